import { beforeAll, describe, expect, it } from "vitest";
import { LongdocError } from "../shared/errors.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import type { Coordinator } from "../shared/run/coord.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import type { AttemptRecord } from "../shared/worker/attempt.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";

/**
 * The model request leaves beside the attempt's count and open record (shared/worker/call.ts),
 * not after them. What must still hold: no partial trace lands before the count (a later delivery
 * finds a dead call through the count), and a count that fails stops the call.
 */
describe("the request leaves beside the attempt's count", () => {
  // 100 tokens/s with thinking: the call streams for a few seconds, with flushes every 100 ms.
  const loop = useLoopback({ stack: { visibilityTimeoutS: 30 }, sim: { decodeTokensPerSecond: 100 } });
  let store: ObjectStore;
  beforeAll(async () => {
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/count/report.md", "# Report\n\n" + "Revenue rose in every segment. ".repeat(200), "text/markdown");
  });

  async function submit(name: string) {
    const spec = parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 256 }\nmaxOutputTokens: 256\n`, "c.yaml");
    return submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 3 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, "inputs/count/report.md") }], outputSchema: null },
    );
  }
  const timing = { traceFlush: { bytes: 64, ms: 100 }, backoffBaseMs: 10, backoffCapMs: 10 };

  it("sends the request before a slow count lands, and writes no partial trace until it has", async () => {
    const job = await submit("slow-count");
    const itemId = job.items[0]!.id;
    const before = loop.sim.calls.length;
    const seen: { requestsSent: number; partialWritten: boolean } = { requestsSent: -1, partialWritten: true };
    const slowCount = (real: Coordinator): Coordinator => ({
      ...real,
      async countAttempt(jobId, id) {
        const n = await real.countAttempt(jobId, id);
        // Hold the count's answer for a second, then look at what happened meanwhile.
        await new Promise((r) => setTimeout(r, 1_000));
        seen.requestsSent = loop.sim.calls.length - before;
        seen.partialWritten = await store.exists(keys.item(job.jobId, itemId, "attempts/1.reasoning.md"));
        return n;
      },
    });
    const response = await loopbackWorker(loop, { timing, coord: slowCount })(600_000);
    expect(response.batchItemFailures).toHaveLength(0);
    // The request was out while the count was still pending, and streamed for a second with nothing flushed.
    expect(seen.requestsSent).toBe(1);
    expect(seen.partialWritten).toBe(false);
    const result = await store.getJson<{ status: string; attempts: number }>(keys.item(job.jobId, itemId, "result.json"));
    expect(result).toMatchObject({ status: "succeeded", attempts: 1 });
  });

  it("stops the call when the count fails: the task goes back, no result, the attempt records why", async () => {
    const job = await submit("failed-count");
    const itemId = job.items[0]!.id;
    const before = loop.sim.calls.length;
    const failingCount = (real: Coordinator): Coordinator => ({
      ...real,
      async countAttempt() {
        await new Promise((r) => setTimeout(r, 300));
        throw new LongdocError("internal", "coordination store: ThrottlingException: rate exceeded", { retryable: true });
      },
    });
    const response = await loopbackWorker(loop, { timing, coord: failingCount })(600_000);
    expect(response.batchItemFailures).toHaveLength(1);
    const calls = loop.sim.calls.slice(before);
    expect(calls).toHaveLength(1);
    // The worker closed the stream long before the answer was done.
    await expect.poll(() => calls[0]!.outcome, { timeout: 2_000 }).toBe("client_closed");
    expect(await store.exists(keys.item(job.jobId, itemId, "result.json"))).toBe(false);
    const attempt = await store.getJson<AttemptRecord>(keys.item(job.jobId, itemId, "attempts/1.json"));
    expect(attempt?.calls[0]?.error).toMatchObject({ kind: "internal", message: "the attempt's count was not recorded" });
  });
});
