import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatProblem, JobFileError, loadJobFile, parseJobText } from "../shared/job/load.ts";
import { resolveLocalDocuments } from "../shared/job/resolve.ts";

const GOOD = `name: annual-report-risks
description: Top risks in each annual report
documents:
  - path: docs/*.md
system: You are a careful financial analyst.
questions:
  - id: risks
    ask: List the five most material risks, citing pages.
model: qwen3-max
thinking: { enabled: true, budget: 8192 }
maxOutputTokens: 4096
output: { format: text }
packing: per-document
truncate: none
limits: { concurrency: 8, rpm: 600, tpm: 1000000, maxCostUsd: 25, maxDocumentBytes: 104857600 }
schedule: cron(0 6 ? * MON *)
trigger: upload
`;

function problems(text: string) {
  try {
    parseJobText(text, "jobs/x.yaml");
  } catch (e) {
    if (e instanceof JobFileError) return e.problems.map(formatProblem);
    throw e;
  }
  throw new Error("expected the job to be rejected");
}

describe("job files", () => {
  it("accepts the contract's example and fills defaults", () => {
    const spec = parseJobText(GOOD, "jobs/x.yaml");
    expect(spec.name).toBe("annual-report-risks");
    expect(spec.thinking).toEqual({ enabled: true, budget: 8192 });
    expect(spec.limits.rpm).toBe(600);
    const minimal = parseJobText("name: a\ndocuments:\n  - path: x.md\nprompt: Summarise.\n", "m.yaml");
    expect(minimal).toMatchObject({ model: "qwen3-max", packing: "per-document", truncate: "none", maxOutputTokens: 4096, output: { format: "text" } });
  });

  it("accepts the shipped example job", async () => {
    const spec = await loadJobFile("jobs/examples/annual-reports.yaml");
    expect(spec.thinking.enabled).toBe(true);
    const docs = await resolveLocalDocuments(spec, "jobs/examples/annual-reports.yaml");
    expect(docs.map((d) => d.source)).toEqual([
      "jobs/examples/docs/3M_2018_10K.pdf",
      "jobs/examples/docs/ULTABEAUTY_2023Q4_EARNINGS.pdf",
      "jobs/examples/docs/northwind-fy2025-board-memo.md",
    ]);
  });

  it("reports YAML syntax errors with their line", () => {
    expect(problems("name: a\ndocuments:\n  - path: [unclosed\nprompt: x\n")).toEqual([expect.stringMatching(/^jobs\/x\.yaml:[345]: \(yaml\): Flow sequence/)]);
  });

  it("rejects unknown fields at their line, with a suggestion", () => {
    const text = GOOD.replace("maxOutputTokens: 4096", "maxOutputToken: 4096").replace("rpm: 600", "rpn: 600");
    expect(problems(text)).toEqual([
      "jobs/x.yaml:11: maxOutputToken: unknown field (did you mean 'maxOutputTokens'?)",
      "jobs/x.yaml:15: limits.rpn: unknown field (did you mean 'rpm'?)",
    ]);
  });

  it("rejects wrong types and names the field", () => {
    expect(problems(GOOD.replace("maxOutputTokens: 4096", "maxOutputTokens: lots"))).toEqual([
      "jobs/x.yaml:11: maxOutputTokens: expected number, got string",
    ]);
    expect(problems(GOOD.replace("thinking: { enabled: true, budget: 8192 }", "thinking: { enabled: yes please }"))).toEqual([
      "jobs/x.yaml:10: thinking.enabled: expected boolean, got string",
    ]);
    expect(problems(GOOD.replace("name: annual-report-risks", "name: Annual Reports"))[0]).toMatch(/^jobs\/x\.yaml:1: name: must match \[a-z0-9-\]\+/);
  });

  it("rejects a job with no documents", () => {
    expect(problems("name: a\nprompt: Summarise.\n")).toEqual(["jobs/x.yaml:1: documents: is required"]);
    expect(problems("name: a\ndocuments: []\nprompt: Summarise.\n")).toEqual(["jobs/x.yaml:2: documents: list at least one document source"]);
    expect(problems("name: a\ndocuments:\n  - url: http://x\nprompt: S.\n")).toEqual([
      "jobs/x.yaml:3: documents[0]: must be `path: <file or glob>` or `s3: s3://bucket/prefix/`",
    ]);
  });

  it("needs questions or a prompt, not both, and refuses JSON output with thinking", () => {
    expect(problems("name: a\ndocuments:\n  - path: x\n")).toEqual(["jobs/x.yaml:1: questions: give `questions:` or `prompt:`"]);
    const json = "name: a\ndocuments:\n  - path: x\nprompt: p\nthinking: { enabled: true }\noutput: { format: json, schema: { type: object } }\n";
    expect(problems(json)).toEqual([expect.stringMatching(/^jobs\/x\.yaml:5: thinking\.enabled: the API refuses JSON output with thinking on/)]);
  });

  it("refuses combinations the call plan cannot serve", () => {
    const base = "name: a\ndocuments:\n  - path: x\nquestions:\n  - id: q\n    ask: Why?\n";
    expect(problems(base + "packing: packed\ncalls: per-question\n")).toEqual([expect.stringMatching(/^jobs\/x\.yaml:7: packing: packed calls answer in one <answer document="N"> section per document/)]);
    expect(problems(base + "calls: per-question\noutput: { format: json, schema: { type: object } }\n")).toEqual([
      "jobs/x.yaml:7: calls: per-question calls need `questions:` and text output",
    ]);
  });

  it("names a missing job file and a glob that matches nothing", async () => {
    await expect(loadJobFile("jobs/nope.yaml")).rejects.toThrow("jobs/nope.yaml:1: (file): cannot read the job file (ENOENT)");
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-job-"));
    const file = path.join(dir, "j.yaml");
    await writeFile(file, "name: a\ndocuments:\n  - path: missing/*.pdf\nprompt: p\n");
    const spec = await loadJobFile(file);
    await expect(resolveLocalDocuments(spec, file)).rejects.toThrow(/documents\[0\]\.path: 'missing\/\*\.pdf' matches no file/);
  });
});
