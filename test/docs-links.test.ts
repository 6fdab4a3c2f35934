// The docs match the repository: every relative link reaches a file (and its heading, for an
// anchor), every `npm run` name is a script, and docs/cli.md documents every option of every
// command under that command's own heading.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { commandsFor } from "../cli/commands/index.ts";
import { createEdge } from "../cli/edge.ts";

const root = path.resolve(import.meta.dirname, "..");
const read = (rel: string) => readFileSync(path.join(root, rel), "utf8");
const docs = ["README.md", "bench/RESULTS.md", ...readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replaceAll(" ", "-");

function headings(text: string): Set<string> {
  const out = new Set<string>();
  let inCode = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) inCode = !inCode;
    const m = !inCode && /^#+\s+(.*)/.exec(line);
    if (m) out.add(slug(m[1]!));
  }
  return out;
}

describe("the docs", () => {
  it("link only to files and headings that exist", () => {
    const broken: string[] = [];
    for (const doc of docs) {
      for (const [, target] of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [file, anchor] = target!.split("#");
        const abs = file ? path.resolve(path.dirname(path.join(root, doc)), file) : path.join(root, doc);
        if (!existsSync(abs)) broken.push(`${doc}: ${target}`);
        else if (anchor && abs.endsWith(".md") && !headings(readFileSync(abs, "utf8")).has(anchor)) broken.push(`${doc}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("name only npm scripts that exist", () => {
    const scripts = Object.keys(JSON.parse(read("package.json")).scripts as Record<string, string>);
    const unknown = docs.flatMap((doc) => [...read(doc).matchAll(/npm run ([\w:.<>-]+)/g)].map((m) => m[1]!).filter((n) => !n.includes("<") && !scripts.includes(n)).map((n) => `${doc}: ${n}`));
    expect(unknown).toEqual([]);
  });

  it("document every command and option in docs/cli.md", async () => {
    const program = new Command();
    const edge = createEdge({});
    for (const register of await commandsFor(undefined)) register(program, edge);
    expect(program.commands.length).toBeGreaterThanOrEqual(14);
    const cli = read("docs/cli.md");
    const missing: string[] = [];
    for (const command of program.commands) {
      const start = cli.indexOf(`\n## ${command.name()}\n`);
      if (start < 0) {
        missing.push(`## ${command.name()}`);
        continue;
      }
      const end = cli.indexOf("\n## ", start + 1);
      const section = cli.slice(start, end < 0 ? undefined : end);
      for (const option of command.options) if (!section.includes(option.long!)) missing.push(`${command.name()} ${option.long}`);
      for (const [, flag] of section.matchAll(/`(--[a-z][a-z-]*)/g)) if (!command.options.some((o) => o.long === flag)) missing.push(`${command.name()}: documents ${flag}, which it does not take`);
    }
    expect(missing).toEqual([]);
  });
});
