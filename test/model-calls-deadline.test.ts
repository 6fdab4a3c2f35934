import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { deployment } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";

/**
 * A Lambda with little time left and a model slower than the catalog assumes: the call is stopped
 * at the deadline with its trace saved and the numbers said, and the next delivery, knowing the
 * measured speed, asks for a budget that fits.
 */
describe("deadline-aware budgets against a slow model", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 30 } });
  let slow: Simulator;
  let store: ObjectStore;
  let catalogPath: string;
  beforeAll(async () => {
    // The model really decodes 200 tokens/s; the catalog assumes 1500 (and a negligible prefill).
    slow = await startSimulator({ port: 0, decodeTokensPerSecond: 200, implicitCacheHitRate: 0 });
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-deadline-"));
    catalogPath = path.join(dir, "catalog.json");
    await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": { decodeTokensPerSecond: 1500, prefillTokensPerSecond: 1_000_000 } } }));
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/slow/report.md", "# Report\n\n" + "Revenue rose in every segment. ".repeat(2000), "text/markdown");
  });
  afterAll(() => slow?.stop());

  it("stops the call at the deadline with the numbers and its partial trace, then sizes the next one to the measured speed", async () => {
    // Prepare
    const catalog = loadCatalog(catalogPath);
    const spec = parseJobText(
      "name: slow\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 8192 }\nmaxOutputTokens: 4096\noutput: { format: text, onTruncated: keep }\n",
      "slow.yaml",
    );
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 5 },
      { spec, model: getModel(catalog, "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, "inputs/slow/report.md") }], outputSchema: null },
    );
    const item = job.items[0]!;
    const handler = loopbackWorker(loop, { catalog, baseURL: slow.baseURL, timing: { backoffBaseMs: 10, backoffCapMs: 10, traceFlush: { bytes: 256, ms: 100 } } });
    // Each delivery has 2 s before the worker must stop (after the margin kept for writing results):
    // the simulated reasoning and answer (about 600 tokens here) take 3 s at 200 tokens/s.
    const deliver = () => handler(deployment.deadlineMarginMs + 2_000);

    // Act 1: at the assumed 1500 tokens/s the budget is far more than 2 s of a 200 tokens/s model.
    const first = await deliver();
    // Assess 1: stopped at the deadline, back to the queue, the trace and the numbers kept.
    expect(first.batchItemFailures).toHaveLength(1);
    expect(await store.exists(keys.item(job.jobId, item.id, "result.json"))).toBe(false);
    const a1 = (await store.getJson<AttemptRecord>(keys.attempt(job.jobId, item.id, 1)))!;
    expect(a1).toMatchObject({ status: "failed", error: { kind: "deadline" }, reasoning: `items/${item.id}/attempts/1.reasoning.md`, usageEstimated: true });
    const said = /stopped at the worker's deadline after \d+\.\d s \(\d s were left; .*decoding 1500 tokens\/s \(catalog\)\): it had streamed about (\d+) tokens of a budget of (\d+) answer \+ (\d+) thinking tokens/.exec(a1.error!.message);
    expect(said, a1.error!.message).not.toBeNull();
    const [streamed, answerCap, thinkingCap] = said!.slice(1).map(Number) as [number, number, number];
    // Under 2 s at the assumed speed, about 0.8 × 2 s × 1500 tokens/s: one cap on both, split in halves.
    expect(a1.calls[0]).toMatchObject({ limitedByDeadline: true, maxCompletionTokens: answerCap + thinkingCap, maxOutputTokens: answerCap });
    expect(answerCap + thinkingCap).toBeGreaterThan(2000);
    expect(answerCap + thinkingCap).toBeLessThanOrEqual(2400);
    expect(streamed).toBe(a1.calls[0]!.usage.outputTokens);
    expect(a1.calls[0]!.usage.outputTokens).toBeGreaterThan(200);
    const partial = new TextDecoder().decode(await store.getBytes(keys.item(job.jobId, item.id, "attempts/1.reasoning.md")));
    expect(partial.length).toBeGreaterThan(100);
    expect(slow.calls.at(-1)!.outcome).toBe("client_closed");

    // Act 2: the same task again, with the same 2 s.
    const second = await deliver();
    // Assess 2: the measured speed sized a smaller budget, sent as one cap on reasoning plus answer, and it fitted.
    expect(second.batchItemFailures).toHaveLength(0);
    const a2 = (await store.getJson<AttemptRecord>(keys.attempt(job.jobId, item.id, 2)))!;
    expect(a2.status).toBe("succeeded");
    const cap2 = a2.calls[0]!.maxCompletionTokens!;
    expect(cap2).toBeLessThan((answerCap + thinkingCap) / 3);
    expect(cap2).toBeGreaterThanOrEqual(256);
    expect(slow.calls.at(-1)!.completionTokens).toBeLessThanOrEqual(cap2);
    const result = (await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json")))!;
    expect(result).toMatchObject({ status: "succeeded", attempts: 2, usageEstimated: true });
    expect(result.costUsd).toBeCloseTo(a1.cost + a2.cost, 9);
  }, 30_000);
});
