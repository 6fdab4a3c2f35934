// A file that is not a job file (a document, a JSON Schema, someone
// else's JSON) given to `longdoc validate` or `run` gets one message saying what the file looks
// like and what longdoc expects, not every complaint of the YAML parser or the schema. A job file
// with mistakes keeps its message per problem.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { longdoc as longdocCli, ROOT } from "./helpers/cli.ts";
import { JobFileError, loadJobFile, parseJobText } from "../shared/job/load.ts";

const dir = mkdtempSync(path.join(tmpdir(), "longdoc-not-a-job-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};
const longdoc = async (args: string[]) => longdocCli(args, { DASHSCOPE_API_KEY: "" });
const problems = async (file: string) => {
  try {
    await loadJobFile(file);
  } catch (e) {
    if (e instanceof JobFileError) return e.problems;
    throw e;
  }
  throw new Error(`${file} loaded as a job`);
};

const request = (id: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "qwen-max", messages: [{ role: "user", content: "Summarise: the quarter went well" }] } });
const EXPECTS = "longdoc expects a YAML job file: a mapping with name, documents (path: or s3: sources) and questions or prompt";

describe("files that are not job files", () => {
  const batch = write("requests.jsonl", `${request("req-1")}\n${request("req-2")}\n${request("req-3")}\n`);

  it("validate: an OpenAI Batch input .jsonl is checked as a batch (see ops-batch.test.ts): here its model is not in the catalog", async () => {
    const r = await longdoc(["validate", batch]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^${batch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1: body\\.model: unknown model 'qwen-max'; the catalog knows \\(priced in Singapore\\): .*qwen3-max`));
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
  });

  it("where only a YAML job will do (the loader of scheduled and upload jobs), a batch file gets one message saying what it is", async () => {
    const found = await problems(batch);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toBe(
      "this looks like an OpenAI Batch input file (JSON Lines: 3 requests with custom_id, method, url and body), not a longdoc job file. " +
        "`longdoc run`, `estimate`, `submit` and `validate` take it as it is (each line one item); a scheduled or upload job must be YAML. " +
        `${EXPECTS} (see jobs/examples/annual-reports.yaml; \`longdoc schema\` prints every field)`,
    );
  });

  it.each([
    ["one-request.jsonl", `${request("only")}\n`, /OpenAI Batch input file \(JSON Lines: 1 request with custom_id, method, url and body\)/],
    ["results.jsonl", '{"custom_id":"a","response":null,"error":{"code":"cost_cap","message":"x"}}\n{"custom_id":"b","response":{"status_code":200},"error":null}\n', /OpenAI Batch output file \(JSON Lines: 2 results, as `longdoc results --format jsonl` writes\)/],
    ["records.jsonl", '{"a":1}\n{"a":2}\n', /JSON Lines \(2 records\) with fields a job file does not have \(a\)/],
    ["chat.json", '{"model":"qwen3-max","messages":[{"role":"user","content":"hi"}]}', /a chat completions request \(a single record with model and messages\)/],
    ["answer.schema.json", '{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"x":{"type":"number"}}}', /a JSON Schema, not a longdoc job file; .*schemaFile/],
    ["package.json", JSON.stringify({ name: "x", version: "1.0.0", private: true, type: "module", scripts: { test: "vitest" }, dependencies: {} }, null, 2), /a mapping with fields a job file does not have \(version, private, type, scripts and dependencies\)/],
    ["memo.md", "# Board memo\n\nCash: rose by 10%.\nDebt fell.\n", /a Markdown document, not a job file; to have longdoc read it, list it in a job file under documents:/],
    ["table.csv", "company,revenue\nAcme,10\n", /a CSV table \(plain text to YAML\)/],
    ["page.html", "<!DOCTYPE html>\n<html><body><p>Hi</p></body></html>\n", /an HTML page, not a job file/],
    ["empty.yaml", "", /no YAML content \(it is empty, or only # comments\)/],
    ["list.yaml", "- a\n- b\n", /a list of 2 entries, not a mapping of fields/],
    ["blob.bin", "abc\u0000def", /a binary file/],
  ])("%s: one message", async (name, text, message) => {
    const found = await problems(write(name, text));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ line: 1, field: "(file)" });
    expect(found[0]!.message).toMatch(message);
    expect(found[0]!.message).toContain(EXPECTS);
  });

  it.each([
    ["jobs/examples/docs/3M_2018_10K.pdf", "this is a PDF document, not a job file"],
    ["jobs/examples/workbooks/nestle-2023-half-year-analyses-by-segment.xlsx", "this is an Excel workbook (XLSX), not a job file"],
  ])("%s: one message naming the document kind", async (file, start) => {
    const found = await problems(path.join(ROOT, file));
    expect(found).toHaveLength(1);
    expect(found[0]!.message.startsWith(start)).toBe(true);
  });

  it("a large file: only its start is read, and the message says what it is or that it is too large for a job", async () => {
    const big = write("big.yaml", "x: " + "y".repeat(2 * 1024 * 1024) + "\n");
    expect((await problems(big))[0]!.message).toMatch(/^the file is 2\.0 MiB; a job file is a few KB of YAML/);
    const bigBatch = write("big.jsonl", Array.from({ length: 9000 }, (_, i) => request(`r${i}`)).join("\n") + "\n");
    expect((await problems(bigBatch))[0]!.message).toMatch(/OpenAI Batch input file \(JSON Lines: at least \d+ requests with custom_id/);
  });
});

describe("job files with mistakes keep one message per problem", () => {
  it("YAML mistakes in a job file", () => {
    const text = "name: x\ndocuments:\n  - path: a.md\nprompt: p\n  bad: [\n";
    try {
      parseJobText(text, "typo.yaml");
      throw new Error("parsed");
    } catch (e) {
      expect((e as JobFileError).problems.length).toBeGreaterThan(1);
      expect((e as JobFileError).problems.every((p) => p.field === "(yaml)")).toBe(true);
    }
  });

  it("misspelt fields in a job file, with suggestions", () => {
    try {
      parseJobText("name: x\ndocument:\n  - path: a.md\nprmpt: p\n", "typo.yaml");
      throw new Error("parsed");
    } catch (e) {
      expect((e as JobFileError).message.split("\n")).toEqual([
        "typo.yaml:1: documents: is required",
        "typo.yaml:2: document: unknown field (did you mean 'documents'?)",
        "typo.yaml:4: prmpt: unknown field (did you mean 'prompt'?)",
      ]);
    }
  });

  it("a job with only some fields is told which are missing", () => {
    expect(() => parseJobText("model: qwen3-max\n", "m.yaml")).toThrow("m.yaml:1: name: is required\nm.yaml:1: documents: is required");
  });
});
