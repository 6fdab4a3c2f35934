// The simulator's Files and Batch APIs through the `openai` SDK, as a client of the real endpoint would call them.
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

let sim: Simulator;
let client: OpenAI;
const line = (id: string, ask: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "qwen3-max", messages: [{ role: "user", content: ask }], max_completion_tokens: 4096, enable_thinking: true, ...extra } });
const upload = async (lines: string[]) => (await client.files.create({ file: await toFile(Buffer.from(lines.join("\n") + "\n"), "in.jsonl"), purpose: "batch" })).id;
const create = async (fileId: string) => client.batches.create({ input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  sim = await startSimulator({ port: 0, batch: { processingMs: 300 } });
  client = new OpenAI({ apiKey: "sk-test", baseURL: sim.baseURL, maxRetries: 0 });
});
afterAll(() => sim.stop());

describe("simulator: Files and Batch APIs", () => {
  it("moves a batch validating → in_progress → finalizing → completed, answers each line (thinking allowed), and sends no chat request", async () => {
    const fileId = await upload([line("a", "What is 2+2?"), line("b", "Name a colour.")]);
    expect((await client.files.content(fileId).then((r) => r.text())).split("\n")[0]).toContain('"custom_id":"a"');
    const created = await create(fileId);
    expect(created).toMatchObject({ status: "validating", input_file_id: fileId, completion_window: "24h", request_counts: { total: 2, completed: 0, failed: 0 } });
    const seen = new Set<string>();
    let b = created;
    for (let i = 0; i < 100 && b.status !== "completed"; i++, await sleep(20)) seen.add((b = await client.batches.retrieve(created.id)).status);
    expect([...seen]).toEqual(expect.arrayContaining(["in_progress", "finalizing", "completed"]));
    expect(b).toMatchObject({ request_counts: { total: 2, completed: 2, failed: 0 }, error_file_id: null });
    const out = (await client.files.content(b.output_file_id!).then((r) => r.text())).trim().split("\n").map((l) => JSON.parse(l));
    expect(out.map((l) => l.custom_id)).toEqual(["a", "b"]);
    expect(out[0].response).toMatchObject({ status_code: 200, body: { object: "chat.completion", model: "qwen3-max", choices: [{ finish_reason: "stop" }] } });
    expect(out[0].response.body.choices[0].message.reasoning_content.length).toBeGreaterThan(0);
    expect(out[0].response.body.usage.completion_tokens).toBeGreaterThan(0);
    expect(sim.calls).toHaveLength(0);
    expect(sim.batches.answeredLines).toBe(2);
  });

  it("puts a faulted line in the error file and counts it failed", async () => {
    sim.injectFaults({ kind: "503", count: 1 });
    const b = await create(await upload([line("x", "One?"), line("y", "Two?")]));
    await sleep(350);
    const done = await client.batches.retrieve(b.id);
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 1, failed: 1 } });
    const errors = (await client.files.content(done.error_file_id!).then((r) => r.text())).trim().split("\n").map((l) => JSON.parse(l));
    expect(errors).toEqual([expect.objectContaining({ custom_id: "x", error: { code: "ModelUnavailable", message: expect.any(String) }, response: expect.objectContaining({ status_code: 503 }) })]);
  });

  it("fails a file with a duplicate custom_id or two models at validation", async () => {
    const dup = await create(await upload([line("same", "One?"), line("same", "Two?")]));
    const mixed = await create(await upload([line("1", "One?"), line("2", "Two?", { model: "qwen3-max-preview" })]));
    await sleep(150);
    expect(await client.batches.retrieve(dup.id)).toMatchObject({ status: "failed", output_file_id: null, errors: { data: [expect.objectContaining({ code: "duplicate_custom_id" })] } });
    expect(await client.batches.retrieve(mixed.id)).toMatchObject({ status: "failed", errors: { data: [expect.objectContaining({ code: "mismatched_model" })] } });
  });

  it("expires a batch when told to, answering none of its lines", async () => {
    sim.batches.configure({ outcome: "expired" });
    try {
      const b = await create(await upload([line("e", "Late?")]));
      await sleep(350);
      expect(await client.batches.retrieve(b.id)).toMatchObject({ status: "expired", output_file_id: null, request_counts: { total: 1, completed: 0, failed: 1 } });
    } finally {
      sim.batches.configure({ outcome: "completed" });
    }
  });

  it("cancels a running batch (cancelling, then cancelled) and lists batches by input file", async () => {
    sim.batches.configure({ processingMs: 10_000 });
    try {
      const fileId = await upload([line("c", "Stop?")]);
      const b = await create(fileId);
      expect((await client.batches.cancel(b.id)).status).toBe("cancelling");
      const listed = await client.batches.list({ limit: 10 }, { query: { input_file_ids: fileId } });
      expect(listed.data.map((x) => x.id)).toEqual([b.id]);
      await sleep(2_600);
      expect((await client.batches.retrieve(b.id)).status).toBe("cancelled");
    } finally {
      sim.batches.configure({ processingMs: 300 });
    }
  });

  it("refuses a file that is not for batch, and an unknown batch", async () => {
    await expect(client.files.create({ file: await toFile(Buffer.from("x"), "x.jsonl"), purpose: "assistants" })).rejects.toMatchObject({ status: 400 });
    await expect(client.batches.retrieve("batch_nope")).rejects.toMatchObject({ status: 404 });
  });
});
