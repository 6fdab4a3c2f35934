/** `longdoc extract <file> [--json]` (cli/commands/extract.ts), driven through commander. */
import { mkdtempSync, readFileSync, truncateSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createEdge } from "../cli/edge.ts";
import { registerExtract } from "../cli/commands/extract.ts";
import { loadDocument } from "../shared/documents/index.ts";
import { countTokens } from "../shared/tokens/index.ts";

const corpus = (name: string) => fileURLToPath(new URL(`./corpus/files/${name}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "longdoc-extract-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const so = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (out.push(String(c)), true));
  const se = vi.spyOn(process.stderr, "write").mockImplementation((c: string | Uint8Array) => (err.push(String(c)), true));
  const saved = process.exitCode;
  process.exitCode = undefined;
  const program = new Command().name("longdoc").exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  registerExtract(program, createEdge({}));
  let thrown: unknown;
  try {
    await program.parseAsync(["node", "longdoc", "extract", ...args]);
  } catch (e) {
    thrown = e;
  } finally {
    so.mockRestore();
    se.mockRestore();
  }
  const code = process.exitCode;
  process.exitCode = saved;
  return { stdout: out.join(""), stderr: err.join(""), code, thrown };
}

describe("longdoc extract", () => {
  it("prints the text exactly as the model sees it", async () => {
    const file = corpus("sp500-constituents.csv");
    const r = await run([file]);
    expect(r.code).toBe(0);
    const doc = await loadDocument({ bytes: new Uint8Array(readFileSync(file)), name: file });
    expect(r.stdout).toBe(doc.text);
    expect(r.stderr).toBe("");
  });

  it("prints PDF page markers", async () => {
    const r = await run([corpus("ULTABEAUTY_2023Q4_EARNINGS.pdf")]);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^--- page \d+ ---$/gm)).toHaveLength(9);
  });

  it("--json: one object with format, bytes, chars, exact tokens and pages", async () => {
    const file = corpus("ULTABEAUTY_2023Q4_EARNINGS.pdf");
    const r = await run([file, "--json"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const o = JSON.parse(lines[0]!);
    const doc = await loadDocument({ bytes: new Uint8Array(readFileSync(file)), name: file });
    expect(o).toEqual({ format: "pdf", bytes: 99758, chars: doc.chars, tokens: countTokens(doc.text), pages: 9 });
    expect(o.tokens).toBeGreaterThan(1000);
  });

  it("--json: sheets for a workbook, and neither pages nor sheets for HTML", async () => {
    const x = JSON.parse((await run([corpus("sheet_visibility.xlsx"), "--json"])).stdout);
    expect(x.format).toBe("xlsx");
    expect(x.sheets).toEqual(["Visible", "Hidden", "VeryHidden"]);
    expect("pages" in x).toBe(false);
    const h = JSON.parse((await run([corpus("usa-patriot-act-publ107-56-pre.htm"), "--json"])).stdout);
    expect(h.format).toBe("html");
    expect("pages" in h || "sheets" in h).toBe(false);
  });

  it("exit 1 with a clear message for a file that cannot be read", async () => {
    const enc = await run([corpus("libreoffice-writer-password.pdf")]);
    expect(enc.code).toBe(1);
    expect(enc.stdout).toBe("");
    expect(enc.stderr).toMatch(/^longdoc: .*libreoffice-writer-password\.pdf: .*password is required/);
    const scan = await run([corpus("scanned-huckfinn-c02-22.pdf"), "--json"]);
    expect(scan.code).toBe(1);
    expect(scan.stderr).toMatch(/OCR is not enabled/);
    const missing = await run([join(tmp, "nope.pdf")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.pdf: no such file/);
    const dir = await run([tmp]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/is a directory/);
    const empty = join(tmp, "empty.txt");
    writeFileSync(empty, "");
    expect((await run([empty])).stderr).toMatch(/empty\.txt: the file is empty/);
  });

  it("refuses a file over 100 MiB without reading it", async () => {
    const big = join(tmp, "huge.pdf");
    writeFileSync(big, "");
    truncateSync(big, 101 * 1024 * 1024); // sparse: no 101 MiB actually written
    const t0 = performance.now();
    const r = await run([big]);
    // A CLI process start included, on two cores shared with other test files.
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/huge\.pdf: 101 MiB .* over the limit of 100 MiB/);
  });

  it("usage errors are commander errors (bin/longdoc.ts maps them to exit 2)", async () => {
    const none = await run([]);
    expect(none.thrown).toBeInstanceOf(CommanderError);
    expect((none.thrown as CommanderError).code).toBe("commander.missingArgument");
    const bad = await run(["x.pdf", "--jsno"]);
    expect((bad.thrown as CommanderError).code).toBe("commander.unknownOption");
  });
});
