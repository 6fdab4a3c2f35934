// OpenAI Batch input lines as people write them: sampling and format fields are sent to Model
// Studio as written (checked on the wire of a real loopback call), fields it cannot honour fail
// their own line with the reason while the other lines run, and the failed lines come back in
// errors.jsonl beside results.jsonl, as OpenAI's output and error files.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { longdoc as cli } from "./helpers/cli.ts";
import { parseBatchText, planBatchCall } from "../shared/job/batch.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createModelClient } from "../shared/model/client.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { openaiBatchObject, type OpenAIBatchObject } from "../shared/run/openai-batch.ts";
import type { RunProgress } from "../shared/run/progress.ts";

const line = (id: string, question: string, body: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "qwen3-max", messages: [{ role: "user", content: question }], ...body } });
const model = getModel(loadCatalog(), "qwen3-max");
const spec = { thinking: { enabled: false }, maxOutputTokens: 4096 };

describe("the fields of a batch line", () => {
  const SAMPLED = { temperature: 0.2, top_p: 0.9, top_k: 20, presence_penalty: 0.5, seed: 42, stop: ["END"], response_format: { type: "json_object" }, max_completion_tokens: 200, n: 1, user: "u-1", frequency_penalty: 0, logprobs: false };

  it("keeps sampling and format fields to send as written; OpenAI's defaults and bookkeeping are accepted and not sent", () => {
    const [r] = parseBatchText(line("a", "Answer in JSON: what is 2+2?", SAMPLED) + "\n", "r.jsonl").requests;
    expect(r).toMatchObject({ maxTokens: 200, seed: 42, sampling: { temperature: 0.2, top_p: 0.9, top_k: 20, presence_penalty: 0.5, stop: ["END"], response_format: { type: "json_object" } } });
    expect(r!.refused).toBeUndefined();
    expect(Object.keys(r!.sampling!).sort()).toEqual(["presence_penalty", "response_format", "stop", "temperature", "top_k", "top_p"]);
    // response_format text asks for nothing: not sent.
    expect(parseBatchText(line("b", "q", { response_format: { type: "text" } }) + "\n", "r.jsonl").requests[0]!.sampling).toBeUndefined();
  });

  it("refuses a line it cannot honour, naming the field and why, and keeps every other line", () => {
    const text = [
      line("ok", "What is 2+2?", { temperature: 1 }),
      line("many", "q", { n: 3 }),
      line("hot", "q", { temperature: 2.5 }),
      line("nojson", "What is 2+2?", { response_format: { type: "json_object" } }),
      line("tools", "q", { tools: [{ type: "function", function: { name: "f" } }] }),
      line("odd", "q", { frobnicate: true }),
      line("seed", "q", { seed: -1 }),
    ].join("\n");
    const batch = parseBatchText(text, "r.jsonl");
    expect(batch.requests.map((r) => [r.customId, r.refused?.field ?? null])).toEqual([
      ["ok", null],
      ["many", "body.n"],
      ["hot", "body.temperature"],
      ["nojson", "body.response_format"],
      ["tools", "body.tools"],
      ["odd", "body.frobnicate"],
      ["seed", "body.seed"],
    ]);
    const messages = Object.fromEntries(batch.requests.map((r) => [r.customId, r.refused?.message]));
    expect(messages.many).toMatch(/one answer per line/);
    expect(messages.hot).toMatch(/from 0 to below 2/);
    expect(messages.nojson).toMatch(/needs the word "json" in a message/);
    // The plan of a refused line fails it as the provider's 400 would, before any call.
    expect(() => planBatchCall(batch.requests[1]!, model, spec)).toThrow(expect.objectContaining({ code: "model_bad_request", message: expect.stringMatching(/^body\.n: 3: .*this line was not sent/) }));
    expect(() => planBatchCall(batch.requests[0]!, model, spec)).not.toThrow();
    // JSON output and thinking do not go together on Model Studio.
    const json = parseBatchText(line("j", "in json", { response_format: { type: "json_object" } }), "r.jsonl").requests[0]!;
    expect(() => planBatchCall(json, model, { ...spec, thinking: { enabled: true } })).toThrow(/does not work with thinking/);
  });

  describe("on the wire", () => {
    let sim: Simulator;
    beforeAll(async () => {
      sim = await startSimulator({ port: 0 });
    });
    afterAll(async () => {
      await sim?.stop();
    });

    it("sends the line's fields in the request body, and the answer obeys response_format", async () => {
      const bodies: Record<string, unknown>[] = [];
      const recording: typeof fetch = async (input, init) => {
        bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
        return fetch(input, init);
      };
      const client = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL, fetch: recording });
      const [r] = parseBatchText(line("a", "Reply in JSON: what is 2+2?", SAMPLED) + "\n", "r.jsonl").requests;
      const plan = planBatchCall(r!, model, spec);
      // As the worker's call does (shared/worker/call.ts): the plan's extras spread into the request.
      const result = await client.chat({ model: "qwen3-max", messages: plan.messages, maxOutputTokens: plan.maxOutputTokens, thinking: { enabled: false }, ...plan.extras });
      expect(bodies[0]).toMatchObject({ temperature: 0.2, top_p: 0.9, top_k: 20, presence_penalty: 0.5, seed: 42, stop: ["END"], response_format: { type: "json_object" } });
      for (const dropped of ["n", "user", "frequency_penalty", "logprobs"]) expect(bodies[0]).not.toHaveProperty(dropped);
      expect(() => JSON.parse(result.answer)).not.toThrow();
    });
  });
});

describe("a batch file with refused lines, run end to end", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-batch-fields-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs the good lines, fails the refused one with its reason, and splits results.jsonl from errors.jsonl", async () => {
    const file = path.join(dir, "people.jsonl");
    await writeFile(
      file,
      [
        line("plain", "Name a prime above 10.", { temperature: 0.7, top_p: 0.8, seed: 7, max_completion_tokens: 300 }),
        line("json", "Give the capital of Japan as JSON.", { response_format: { type: "json_object" }, max_tokens: 300 }),
        line("three", "Largest planet?", { n: 3 }),
      ].join("\n") + "\n",
    );
    const state = path.join(dir, "state");
    const out = path.join(dir, "out");
    const v = await cli(["validate", file], { DASHSCOPE_API_KEY: "" });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stderr).toContain(`warning: ${file}:3: body.n: 3: longdoc gives one answer per line`);
    const vj = await cli(["validate", file, "--json"], { DASHSCOPE_API_KEY: "" });
    expect(JSON.parse(vj.stdout)).toMatchObject({ ok: true, files: [{ file, ok: true, requests: 3, problems: [], warnings: [expect.stringContaining(`${file}:3: body.n: 3: longdoc gives one answer per line`)] }] });

    const r = await cli(["run", file, "--state", state, "--out", out, "--workers", "1", "--json"], { DASHSCOPE_API_KEY: "" }, 120_000);
    expect(r.code, r.stderr).toBe(3);
    const summary = JSON.parse(r.stdout.trimEnd().split("\n").pop()!) as Manifest;
    expect(summary.counts).toMatchObject({ total: 3, succeeded: 2, failed: 1 });

    const res = await cli(["results", summary.jobId, "--state", state, "--out", out, "--format", "jsonl"], { DASHSCOPE_API_KEY: "" });
    expect(res.code, res.stderr).toBe(0);
    const read = async (name: string) => (await readFile(path.join(out, summary.jobId, name), "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: { choices: { message: { content: string } }[] } } | null; error: { code: string; message: string } | null });
    const ok = await read("results.jsonl");
    expect(ok.map((l) => [l.custom_id, l.response!.status_code, l.error])).toEqual([["plain", 200, null], ["json", 200, null]]);
    expect(() => JSON.parse(ok[1]!.response!.body.choices[0]!.message.content)).not.toThrow();
    // status --json also reads as OpenAI's batch object.
    const st = await cli(["status", summary.jobId, "--state", state, "--json"], { DASHSCOPE_API_KEY: "" });
    expect(st.code, st.stderr).toBe(3);
    const progress = JSON.parse(st.stdout) as { status: string; openaiBatch: OpenAIBatchObject };
    expect(progress.status).toBe("partial");
    expect(progress.openaiBatch).toMatchObject({ id: summary.jobId, object: "batch", endpoint: "/v1/chat/completions", input_file: file, status: "completed", request_counts: { total: 3, completed: 2, failed: 1 }, failed_at: null, cancelled_at: null });
    expect(progress.openaiBatch.completed_at).toBe(Math.floor(Date.parse(summary.finishedAt!) / 1000));
    const errors = await read("errors.jsonl");
    expect(errors).toEqual([{ id: expect.any(String), custom_id: "three", response: null, error: { code: "model_bad_request", message: expect.stringMatching(/^body\.n: 3: longdoc gives one answer per line.*this line was not sent/) } }]);
  }, 180_000);
});

describe("a batch job's progress as OpenAI's batch object", () => {
  const progress = (status: RunProgress["status"], cancelled = false) =>
    ({ jobId: "j", status, cancelled, startedAt: "2026-01-01T00:00:00.000Z", finishedAt: status === "running" ? null : "2026-01-01T00:01:00.000Z", counts: { total: 4, succeeded: 2, failed: 1, skipped: 1, queued: 0, retrying: 0 } }) as unknown as RunProgress;
  const job = { jobId: "j", submittedAt: "2026-01-01T00:00:00.000Z", batch: { file: "r.jsonl", requests: 4 } };

  it("maps the run's status to OpenAI's states and counts skipped lines as failed", () => {
    expect(openaiBatchObject(progress("running"), job)).toMatchObject({ status: "in_progress", completed_at: null, request_counts: { total: 4, completed: 2, failed: 2 } });
    expect(openaiBatchObject(progress("running", true), job)!.status).toBe("cancelling");
    expect(openaiBatchObject(progress("failed"), job)).toMatchObject({ status: "completed", completed_at: 1767225660 });
    expect(openaiBatchObject(progress("halted"), job)).toMatchObject({ status: "failed", failed_at: 1767225660, completed_at: null });
    expect(openaiBatchObject(progress("cancelled"), job)).toMatchObject({ status: "cancelled", cancelled_at: 1767225660 });
    expect(openaiBatchObject(progress("succeeded"), { ...job, batch: undefined })).toBeNull();
  });
});
