import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { countTokens } from "../shared/tokens/index.ts";
import { AttemptRecorder, closeAbandonedAttempt } from "../shared/worker/attempt.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";

const chunk = (text: string, kind: "reasoning" | "answer") => ({ requestId: "chatcmpl-1", reasoning: kind === "reasoning" ? text : "", answer: kind === "answer" ? text : "", finishReason: null, firstChunkAt: Date.now() });

/** The flush policy of a streaming call's partial trace, against the emulated S3. */
describe("partial traces are flushed by size and by time", () => {
  let stack: LocalStack;
  let store: ObjectStore;
  beforeAll(async () => {
    stack = await startLocalStack();
    store = new ObjectStore(stack.s3, stack.bucket);
  });
  afterAll(() => stack?.stop());
  const text = async (key: string) => new TextDecoder().decode((await store.getBytes(key)) ?? new Uint8Array());
  const recorder = (itemId: string, flush: { bytes: number; ms: number }) =>
    new AttemptRecorder({ store, jobId: "flush-job", itemId, owner: "test", log: silentLog, flush, currency: "USD", price: (u) => u.inputTokens * 1e-6 + u.outputTokens * 5e-6 });

  it("writes the growing text once the unflushed bytes pass the size, and not before", async () => {
    const r = recorder("by-size", { bytes: 1000, ms: 60_000 });
    await r.begin(1);
    const trace = await r.startCall({ label: null, inputTokens: 100, maxOutputTokens: 50, limitedByDeadline: false, reservedCost: 0 });
    const key = keys.item("flush-job", "by-size", "attempts/1.reasoning.md");
    // 600 then 300 bytes: under the size, and the interval is a minute away: nothing written yet.
    trace.onChunk(chunk("a".repeat(600), "reasoning"));
    trace.onChunk(chunk("b".repeat(300), "reasoning"));
    await new Promise((res) => setTimeout(res, 200));
    expect(await store.exists(key)).toBe(false);
    // 800 more pass the 1,000-byte mark: the whole text so far is written.
    trace.onChunk(chunk("c".repeat(800), "reasoning"));
    await expect.poll(() => text(key), { timeout: 2_000, interval: 50 }).toBe("a".repeat(600) + "b".repeat(300) + "c".repeat(800));
    // No answer text yet: no answer file.
    expect(await store.exists(keys.item("flush-job", "by-size", "attempts/1.answer.md"))).toBe(false);
    await r.close("failed", { kind: "model_unavailable", message: "dropped" });
  });

  it("writes what arrived within the interval even when no more text comes (a stalled or killed stream)", async () => {
    const r = recorder("by-time", { bytes: 1 << 20, ms: 150 });
    await r.begin(1);
    const trace = await r.startCall({ label: null, inputTokens: 100, maxOutputTokens: 50, limitedByDeadline: false, reservedCost: 0.5 });
    trace.onChunk(chunk("The answer so far", "answer"));
    const key = keys.item("flush-job", "by-time", "attempts/1.answer.md");
    await expect.poll(() => text(key), { timeout: 2_000, interval: 50 }).toBe("The answer so far");
    // The open record names the call in flight and what it reserved.
    const open = await store.getJson<AttemptRecord>(keys.item("flush-job", "by-time", "attempts/1.open.json"));
    expect(open).toMatchObject({ status: "running", inFlightCalls: [{ label: null, reservedCost: 0.5, inputTokens: 100 }] });
    const rec = await trace.failed({ kind: "deadline", message: "stopped" }, Date.now());
    expect(rec).toMatchObject({ usageEstimated: true, usage: { inputTokens: 100, cachedTokens: 0 }, requestId: "chatcmpl-1" });
    const closed = (await r.close("failed", { kind: "deadline", message: "stopped" }))!;
    expect(closed.record).toMatchObject({ status: "failed", answer: "items/by-time/attempts/1.answer.md", reasoning: null });
    // The open record is superseded; the caller removes it once nothing depends on it.
    await closed.removeSuperseded();
    expect(await store.exists(keys.item("flush-job", "by-time", "attempts/1.open.json"))).toBe(false);
  });

  it("keeps calls that stream together (samples) in their own sections, and a takeover counts each one still in flight", async () => {
    const r = recorder("together", { bytes: 1 << 20, ms: 60_000 });
    await r.begin(1);
    const shape = (label: string, reservedCost: number) => ({ label, inputTokens: 100, maxOutputTokens: 50, limitedByDeadline: false, reservedCost });
    const first = await r.startCall(shape("sample 1", 0));
    first.onChunk(chunk("one done", "answer"));
    await first.succeeded({ cacheType: "implicit", reasoning: "", answer: "one done", finishReason: "stop", usage: { inputTokens: 100, outputTokens: 2, reasoningTokens: 0, cachedTokens: 0 }, requestId: "chatcmpl-1" }, Date.now());
    const [a, b] = [await r.startCall(shape("sample 2", 0.25)), await r.startCall(shape("sample 3", 0.5))];
    // Their chunks interleave as they arrive.
    a.onChunk(chunk("two ", "answer"));
    b.onChunk(chunk("three ", "answer"));
    a.onChunk(chunk("alpha", "answer"));
    b.onChunk(chunk("beta gamma", "answer"));
    await r.flush();
    const answerKey = keys.item("flush-job", "together", "attempts/1.answer.md");
    expect(await text(answerKey)).toBe("## sample 1\n\none done\n\n## sample 2\n\ntwo alpha\n\n## sample 3\n\nthree beta gamma");
    const openKey = keys.item("flush-job", "together", "attempts/1.open.json");
    await expect
      .poll(async () => (await store.getJson<AttemptRecord>(openKey))?.inFlightCalls?.map((c) => c.label), { timeout: 2_000, interval: 50 })
      .toEqual(["sample 2", "sample 3"]);

    // The worker dies here: the next delivery closes the attempt, counting each in-flight call from its own section.
    const closed = (await closeAbandonedAttempt({ store, jobId: "flush-job", itemId: "together", price: (u) => u.inputTokens * 1e-6 + u.outputTokens * 5e-6 }, 1))!;
    expect(closed.reservedCost).toBe(0.75);
    const died = closed.record.calls.filter((c) => c.error?.kind === "worker_crashed");
    expect(died.map((c) => c.label)).toEqual(["sample 2", "sample 3"]);
    expect(died.map((c) => c.usage.outputTokens)).toEqual([countTokens("two alpha"), countTokens("three beta gamma")]);
    expect(closed.countedCost).toBeCloseTo(died.reduce((s, c) => s + c.cost, 0), 12);
    expect(closed.record).toMatchObject({ status: "died", inFlightCalls: [] });
  });

  it("counts the whole input of a call whose worker died before its first chunk arrived (the request had left)", async () => {
    const r = recorder("prefill", { bytes: 1 << 20, ms: 60_000 });
    await r.begin(1);
    await r.startCall({ label: null, inputTokens: 120_000, maxOutputTokens: 50, limitedByDeadline: false, reservedCost: 0.4 });
    // The worker dies during the prefill: no text, only the open record naming the call in flight.
    const closed = (await closeAbandonedAttempt({ store, jobId: "flush-job", itemId: "prefill", price: (u) => u.inputTokens * 1e-6 + u.outputTokens * 5e-6 }, 1))!;
    expect(closed.record.calls).toHaveLength(1);
    expect(closed.record.calls[0]).toMatchObject({ usage: { inputTokens: 120_000, outputTokens: 0, cachedTokens: 0 }, usageEstimated: true, error: { kind: "worker_crashed" } });
    expect(closed.countedCost).toBeCloseTo(0.12, 9);
    expect(closed.record).toMatchObject({ status: "died", usageEstimated: true, cost: 0.12 });
  });
});

describe("longdoc retry --max-output-tokens", () => {
  it("refuses a cap that is not a whole number from 1 to 65536, as a usage error (exit 2)", async () => {
    const err = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", "retry", "some-job", "--max-output-tokens", "70000"], { timeout: 60_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toContain("--max-output-tokens");
    expect(err?.stderr).toContain("must be a whole number from 1 to 65536");
  });
});
