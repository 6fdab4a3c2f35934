// OpenAI Batch input files taken in as jobs: each line an item (its custom_id the item id, its
// messages the prompt), through the same submit, workers and manifest as a job file, and
// `results --format jsonl` answering line for line. Bad lines are refused with line and field.
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { longdoc as longdocCli } from "./helpers/cli.ts";
import { JobFileError } from "../shared/job/load.ts";
import { looksLikeBatchInput, parseBatchText, planBatchCall } from "../shared/job/batch.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { countChatTokens } from "../shared/tokens/index.ts";
import { parseTaskMessage } from "../shared/run/queue.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import type { JobRecord } from "../shared/job/record.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";

const longdoc = async (args: string[], env: Record<string, string | undefined> = {}) => longdocCli(args, { DASHSCOPE_API_KEY: "", ...env }, 90_000);

type Line = { custom_id?: unknown; method?: unknown; url?: unknown; body?: unknown; [k: string]: unknown };
const request = (id: string, question: string, extra: Partial<Line> = {}, body: Record<string, unknown> = {}): Line => ({
  custom_id: id,
  method: "POST",
  url: "/v1/chat/completions",
  body: { model: "qwen3-max", messages: [{ role: "system", content: "Be brief." }, { role: "user", content: question }], max_tokens: 300, ...body },
  ...extra,
});
const jsonl = (lines: (Line | string)[]) => lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n";

const problemsOf = (text: string) => {
  try {
    parseBatchText(text, "requests.jsonl");
  } catch (e) {
    if (e instanceof JobFileError) return e.problems.map((p) => `${p.line}: ${p.field}: ${p.message}`);
    throw e;
  }
  throw new Error("parsed");
};

describe("parsing an OpenAI Batch input file", () => {
  it("takes each line as an item: custom_id, messages (text parts joined), max_tokens, the file's model", () => {
    const batch = parseBatchText(
      jsonl([
        request("q-1", "What is 2+2?"),
        request("q_2.b", "", {}, { messages: [{ role: "user", content: [{ type: "text", text: "Part one. " }, { type: "text", text: "Part two." }] }], max_tokens: undefined, max_completion_tokens: 77 }),
      ]) + "\n",
      "dir/My Requests.jsonl",
    );
    expect(batch.requests.map((r) => [r.line, r.customId, r.maxTokens])).toEqual([[1, "q-1", 300], [2, "q_2.b", 77]]);
    expect(batch.requests[1]!.messages).toEqual([{ role: "user", content: "Part one. Part two." }]);
    expect(batch.spec).toMatchObject({ name: "my-requests", model: "qwen3-max", thinking: { enabled: false }, documents: [], calls: "per-item" });
  });

  it("refuses each bad line with its line number and field, all of them at once", () => {
    const text = jsonl([
      request("a", "ok"),
      request("b", "x", { url: "/v1/embeddings" }),
      request("a", "again"),
      "{not json",
      request("c", "x", {}, { model: "qwen-plus" }),
      request("../etc", "x"),
      // A sampling field is no file problem (test/batch-fields.test.ts): this line is fine.
      request("d", "x", {}, { temperature: 0 }),
      request("e", "x", { body: undefined }),
      "[1,2]",
      request("f", "x", {}, { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x" } }] }] }),
      request("A", "case clash"),
      request("g/h", "slash"),
      request("i", "x", { method: "GET" }),
    ]);
    expect(problemsOf(text)).toEqual([
      '2: url: "/v1/embeddings" is not supported: longdoc runs chat completions only (url "/v1/chat/completions")',
      '3: custom_id: duplicate custom_id "a" (first on line 1)',
      expect.stringMatching(/^4: \(line\): not a JSON object \(/),
      '5: body.model: mixed models: "qwen-plus" here, "qwen3-max" on line 1; one batch file runs one model',
      expect.stringMatching(/^6: custom_id: "\.\.\/etc" cannot be an item id: it names the item's folder in S3 and in out\//),
      "8: body: is required",
      expect.stringMatching(/^9: \(line\): not a JSON object; /),
      expect.stringMatching(/^10: body\.messages\[0\]\.content\[0\]: only text parts are supported .*image_url/),
      expect.stringMatching(/^11: custom_id: duplicate custom_id "A": line 1 has "a", and ids that differ only in case share a folder/),
      expect.stringMatching(/^12: custom_id: "g\/h" cannot be an item id/),
      '13: method: must be "POST", got "GET"',
    ]);
  });

  it("refuses an empty file, mixed thinking, and a last message from the assistant", () => {
    expect(problemsOf("\n\n")).toEqual(["1: (file): the OpenAI Batch file has no request lines"]);
    expect(problemsOf(jsonl([request("a", "x", {}, { enable_thinking: true }), request("b", "y")]))).toEqual([
      "2: body.enable_thinking: mixed thinking: false here, true on line 1; one batch file runs with thinking on or off throughout",
    ]);
    expect(problemsOf(jsonl([request("a", "x", {}, { messages: [{ role: "user", content: "q" }, { role: "assistant", content: "a" }] })]))).toEqual([
      "1: body.messages[1].role: the last message must not be the assistant's: there is nothing to answer",
    ]);
  });

  it("recognises a batch input file by its first line, and a .jsonl whose first line is broken", () => {
    expect(looksLikeBatchInput(jsonl([request("a", "x")]), "anything.txt")).toBe(true);
    expect(looksLikeBatchInput("{broken\n", "r.jsonl")).toBe(true);
    expect(looksLikeBatchInput('{"custom_id":"a","response":null,"error":null}\n', "results.jsonl")).toBe(false);
    expect(looksLikeBatchInput("name: x\ndocuments: []\n", "job.yaml")).toBe(false);
    // A first request longer than the head read: cut mid-line, still a batch file.
    expect(looksLikeBatchInput(`{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "${"x".repeat(100)}`, "requests.txt")).toBe(true);
  });

  it("plans each line's call as sent: its messages' exact tokens, its max_tokens, and input_too_long when it cannot fit", () => {
    const model = getModel(loadCatalog(), "qwen3-max");
    const [r] = parseBatchText(jsonl([request("a", "What is the capital of France?", {}, { max_tokens: 123 })]), "r.jsonl").requests;
    const spec = { thinking: { enabled: false }, maxOutputTokens: 4096 };
    const plan = planBatchCall(r!, model, spec);
    expect(plan.inputTokens).toBe(countChatTokens(r!.messages.map((m) => ({ role: m.role, content: m.content as string }))));
    expect(plan.maxOutputTokens).toBe(123);
    expect(plan.messages).toEqual(r!.messages);
    const huge = { messages: [{ role: "user" as const, content: "word ".repeat(300_000) }] };
    expect(() => planBatchCall(huge, model, spec)).toThrow(expect.objectContaining({ code: "input_too_long" }));
  });
});

describe("longdoc run, estimate, validate and results on a batch file", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-batch-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const questions = ["What is 2+2?", "Name a prime above 10.", "Capital of Japan?", "Spell 'cat' backwards.", "Largest planet?"];
  const ids = ["alpha", "beta", "gamma", "delta", "epsilon"];

  it("a good file of five lines: validate, estimate, run, then results --format jsonl answers line for line by custom_id", async () => {
    const file = path.join(dir, "requests.jsonl");
    // One line with a tiny answer cap: its answer is cut off, so it fails output_truncated.
    await writeFile(file, jsonl(ids.map((id, i) => request(id, questions[i]!, {}, i === 3 ? { max_tokens: 3 } : {}))));
    const state = path.join(dir, "state");
    const out = path.join(dir, "out");

    const v = await longdoc(["validate", file]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toBe(`${file}: ok (requests, OpenAI Batch input, 5 request(s), model qwen3-max)\n`);

    const e = await longdoc(["estimate", file, "--json"]);
    expect(e.code, e.stderr).toBe(0);
    const est = JSON.parse(e.stdout) as { items: { id: string; inputTokens: number; maxOutputTokens: number; documents: unknown[] }[] };
    expect(est.items.map((i) => i.id)).toEqual(ids);
    expect(est.items.every((i) => i.inputTokens > 10 && i.documents.length === 0)).toBe(true);
    expect(est.items.map((i) => i.maxOutputTokens)).toEqual([300, 300, 300, 3, 300]);

    const r = await longdoc(["run", file, "--state", state, "--out", out, "--workers", "1", "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const summary = JSON.parse(r.stdout.trimEnd().split("\n").pop()!) as Manifest;
    expect(summary).toMatchObject({ job: "requests", status: "partial", counts: { total: 5, succeeded: 4, failed: 1 } });
    const runDir = path.join(out, summary.jobId);
    const job = JSON.parse(await readFile(path.join(runDir, "job.json"), "utf8")) as JobRecord;
    expect(job.batch).toEqual({ file, requests: 5 });
    expect(job.items.map((i) => i.id)).toEqual(ids);
    // The line's request is kept with the run, outside items/ (a retry moves items/<id>/ aside).
    const stored = JSON.parse(await readFile(path.join(runDir, "requests", "beta.json"), "utf8")) as { customId: string; line: number };
    expect(stored).toMatchObject({ customId: "beta", line: 2 });

    const res = await longdoc(["results", summary.jobId, "--state", state, "--out", out, "--format", "jsonl"]);
    expect(res.code, res.stderr).toBe(0);
    type Out = {
      custom_id: string;
      response: { status_code: number; body: { choices: { message: { content: string } }[]; usage: { prompt_tokens: number } } } | null;
      error: { code: string } | null;
    };
    const read = async (name: string) => (await readFile(path.join(runDir, name), "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l) as Out);
    // As OpenAI's output and error files: the succeeded lines in one, the failed line in the other.
    expect(res.stdout).toContain(`wrote 4 succeeded line(s) to ${path.join(runDir, "results.jsonl")}`);
    expect(res.stdout).toContain(`wrote 1 failed or skipped line(s) to ${path.join(runDir, "errors.jsonl")}`);
    const errors = await read("errors.jsonl");
    expect(errors).toEqual([expect.objectContaining({ custom_id: "delta", response: null, error: expect.objectContaining({ code: "output_truncated" }) })]);
    const lines = await read("results.jsonl");
    expect(lines.map((l) => l.custom_id)).toEqual(ids.filter((id) => id !== "delta"));
    for (const l of lines) {
      const i = ids.indexOf(l.custom_id);
      // The simulator repeats the question it was asked: each line's own messages reached the model.
      expect(l.response!.status_code).toBe(200);
      expect(l.response!.body.choices[0]!.message.content).toContain(questions[i]!);
      expect(l.response!.body.usage.prompt_tokens).toBe(est.items[i]!.inputTokens);
    }

    // retry runs the failed line again from its stored request (it is cut off again, not lost).
    const rt = await longdoc(["retry", summary.jobId, "--state", state, "--out", out, "--workers", "1", "--json"]);
    expect(rt.code, rt.stderr).toBe(3);
    const after = JSON.parse(await readFile(path.join(runDir, "manifest.json"), "utf8")) as Manifest;
    expect(after.items.find((i) => i.id === "delta")).toMatchObject({ status: "failed", error: { kind: "output_truncated" } });
  }, 120_000);

  it("a file with a bad line exits 1 naming the line and field, before anything starts", async () => {
    const file = path.join(dir, "bad.jsonl");
    await writeFile(file, jsonl([request("a", "x"), request("b", "y"), request("a", "z")]));
    const state = path.join(dir, "bad-state");
    for (const command of ["run", "estimate", "submit"]) {
      const r = await longdoc(command === "run" ? [command, file, "--state", state] : [command, file], { LONGDOC_BUCKET: "nowhere", LONGDOC_QUEUE_URL: "http://127.0.0.1:9/q" });
      expect(r.code, `${command}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`${file}:3: custom_id: duplicate custom_id "a" (first on line 1)`);
      expect(r.stdout).toBe("");
    }
    expect(existsSync(state)).toBe(false);
  }, 60_000);
});

describe("longdoc submit of a batch file to a deployed stack (fauxqs standing in for AWS)", () => {
  let aws: LocalStack;
  let dir: string;
  beforeAll(async () => {
    aws = await startLocalStack();
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-batch-submit-"));
  });
  afterAll(async () => {
    await aws?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes each line's request under runs/<jobId>/requests/, the job with one item per line, and one task per item", async () => {
    const file = path.join(dir, "nightly.jsonl");
    await writeFile(file, jsonl([request("r1", "one"), request("r2", "two"), request("r3", "three")]));
    const env = {
      LONGDOC_BUCKET: aws.bucket,
      LONGDOC_QUEUE_URL: aws.queueUrl,
      AWS_ENDPOINT_URL: aws.endpoint.replace("127.0.0.1", "localhost"),
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      AWS_REGION: "us-east-1",
      AWS_PROFILE: undefined,
    };
    const r = await longdoc(["submit", file, "--json"], env);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { jobId: string; items: number };
    expect(info.items).toBe(3);
    expect(r.stderr).toContain(`requests:  3 line(s) of ${file} written to s3://${aws.bucket}/runs/${info.jobId}/requests/`);
    const store = new ObjectStore(aws.s3, aws.bucket);
    const job = (await store.getJson<JobRecord>(keys.job(info.jobId)))!;
    expect(job.items).toEqual(["r1", "r2", "r3"].map((id) => ({ id, documents: [], request: `s3://${aws.bucket}/${keys.request(info.jobId, id)}` })));
    expect(await store.getJson(keys.request(info.jobId, "r2"))).toMatchObject({ customId: "r2", model: "qwen3-max", messages: [{ role: "system" }, { role: "user", content: "two" }] });
    const got = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: aws.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    expect((got.Messages ?? []).map((m) => parseTaskMessage(m.Body!).itemId).sort()).toEqual(["r1", "r2", "r3"]);
  }, 60_000);
});
