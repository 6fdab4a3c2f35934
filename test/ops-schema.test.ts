// `longdoc schema` and the committed jobs/job.schema.json: the same text, generated from the zod
// schema the loader uses; a JSON Schema ajv compiles that accepts every example job; and the
// example jobs point their editors at it.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FIELD_HELP, jobJsonSchemaText } from "../cli/commands/schema.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const COMMITTED = path.join(ROOT, "jobs", "job.schema.json");
const EXAMPLES = path.join(ROOT, "jobs", "examples");
const examples = () => readdirSync(EXAMPLES).filter((f) => f.endsWith(".yaml")).sort();
const REGENERATE = "jobs/job.schema.json is out of date: run `node bin/longdoc.ts schema > jobs/job.schema.json` and commit it";

const compile = () => {
  const ajv = new Ajv({ allErrors: true, strict: true });
  return ajv.compile(JSON.parse(readFileSync(COMMITTED, "utf8")));
};

describe("longdoc schema", () => {
  it("prints exactly the committed jobs/job.schema.json", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", "schema"], { cwd: ROOT, timeout: 60_000 });
    expect(stdout, REGENERATE).toBe(readFileSync(COMMITTED, "utf8"));
    expect(jobJsonSchemaText(), REGENERATE).toBe(stdout);
  });

  it("is a draft-07 JSON Schema of the job's own fields, with hover help for each top-level field", () => {
    const schema = JSON.parse(readFileSync(COMMITTED, "utf8"));
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(["name", "documents"]);
    for (const field of Object.keys(FIELD_HELP)) expect(schema.properties[field]?.description, field).toBe(FIELD_HELP[field]);
  });

  it("accepts every example job (ajv)", () => {
    const validate = compile();
    for (const file of examples()) {
      const job = parse(readFileSync(path.join(EXAMPLES, file), "utf8"));
      expect(validate(job) ? null : validate.errors, file).toBeNull();
    }
  });

  it("refuses what the loader refuses field by field: unknown fields, wrong enums, bad sources", () => {
    const validate = compile();
    const base = { name: "x", documents: [{ s3: "s3://bucket-a/in/" }], prompt: "p" };
    expect(validate(base)).toBe(true);
    expect(validate({ ...base, modle: "qwen3-max" })).toBe(false);
    expect(validate({ ...base, trigger: "uploads" })).toBe(false);
    expect(validate({ ...base, packing: "stuffed" })).toBe(false);
    expect(validate({ ...base, documents: [{ url: "https://example.com/a.pdf" }] })).toBe(false);
    expect(validate({ ...base, name: "Has Spaces" })).toBe(false);
    expect(validate({ ...base, thinking: { enabled: true, budget: 100_000 } })).toBe(false);
  });

  it("every example job's first line points yaml-language-server at jobs/job.schema.json", () => {
    for (const file of examples()) {
      const first = readFileSync(path.join(EXAMPLES, file), "utf8").split("\n")[0]!;
      const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
      expect(m, `${file}: first line '${first}'`).not.toBeNull();
      expect(path.resolve(EXAMPLES, m![1]!)).toBe(COMMITTED);
      expect(existsSync(path.resolve(EXAMPLES, m![1]!))).toBe(true);
    }
  });
});
