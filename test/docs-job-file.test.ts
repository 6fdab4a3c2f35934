// docs/job-file.md's field reference is generated from the job schema the loader uses: the
// committed file must be what the generator prints, and every field the loader accepts must be
// documented there with its description.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { jobJsonSchema } from "../cli/commands/schema.ts";
import { BEGIN, END, JOB_FILE_DOC, renderJobFields, withGeneratedFields } from "../scripts/job-file-doc.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const STALE = "docs/job-file.md is out of date with shared/job/schema.ts: run `npm run docs:job-file` and commit it";
const committed = () => readFileSync(JOB_FILE_DOC, "utf8");

/** Every field path of a JSON Schema with its description, union variants and list entries included. */
function fieldPaths(node: Record<string, any>, prefix = "", out = new Map<string, string | undefined>()) {
  for (const [key, child] of Object.entries<Record<string, any>>(node.properties ?? {})) {
    const p = prefix ? `${prefix}.${key}` : key;
    out.set(p, child.description);
    fieldPaths(child, p, out);
  }
  if (node.type === "array" && node.items) fieldPaths(node.items, `${prefix}[]`, out);
  for (const variant of node.anyOf ?? node.oneOf ?? []) fieldPaths(variant, prefix, out);
  return out;
}

describe("docs/job-file.md", () => {
  it("holds exactly the generated field reference between its markers", () => {
    const doc = committed();
    expect(doc.split(BEGIN).length, "one begin marker").toBe(2);
    expect(doc.split(END).length, "one end marker").toBe(2);
    expect(withGeneratedFields(doc), STALE).toBe(doc);
  });

  it("documents every field the loader accepts, each with its description from the schema", () => {
    const doc = committed();
    const fields = fieldPaths(jobJsonSchema());
    expect(fields.size).toBeGreaterThan(40);
    for (const [field, description] of fields) {
      const top = !field.includes(".") && !field.includes("[]");
      expect(doc, `field ${field}`).toContain(top ? `### ${field}\n` : `\`${field}\``);
      expect(description, `${field} has no description in the schema: add .describe() in shared/job/schema.ts`).toBeTruthy();
      expect(doc, `${field}'s description`).toContain(description!.replace(/\.$/, ""));
    }
  });

  it("changes when the schema changes: a new field, a new default, a new description", () => {
    const base = z.strictObject({ name: z.string().describe("The name."), limits: z.strictObject({ rpm: z.int().min(1).optional().describe("Requests per minute.") }) });
    const before = renderJobFields(jobJsonSchema(base));
    const added = renderJobFields(
      jobJsonSchema(base.extend({ limits: z.strictObject({ rpm: z.int().min(1).optional().describe("Requests per minute."), burst: z.int().max(9).default(3).describe("Burst size.") }) })),
    );
    expect(added).not.toBe(before);
    expect(added).toContain("- `limits.burst` (integer, at most 9; default `3`): Burst size.");
    const reworded = renderJobFields(jobJsonSchema(z.strictObject({ name: z.string().describe("Another text."), limits: base.shape.limits })));
    expect(reworded).toContain("Another text.");
    expect(withGeneratedFields(committed(), added)).not.toBe(committed());
  });

  it("npm run docs:job-file -- --check exits 0 on the committed file", async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["scripts/job-file-doc.ts", "--check"], { cwd: ROOT, timeout: 60_000 });
    expect(stderr).toBe("");
    expect(stdout).toBe("");
  });

  it("refuses a doc whose markers are missing, naming the file", () => {
    expect(() => withGeneratedFields("# Job files\n")).toThrow(/docs\/job-file\.md: the markers/);
  });
});
