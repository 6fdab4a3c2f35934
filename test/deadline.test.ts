import { beforeAll, describe, expect, it } from "vitest";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { deployment } from "../shared/settings.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";

/** Lambda's clock: the output is sized to what can be decoded before the function is killed. */
describe("the worker's deadline", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 30 } });
  let store: ObjectStore;
  beforeAll(async () => {
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/deadline/report.md", "# Report\n\n" + "Revenue rose in every segment. ".repeat(400), "text/markdown");
  });

  async function deliver(remainingMs: number) {
    const spec = parseJobText("name: deadline\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 8192 }\nmaxOutputTokens: 4096\n", "d.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 3 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, "inputs/deadline/report.md") }], outputSchema: null },
    );
    const before = loop.sim.calls.length;
    const response = await loopbackWorker(loop)(remainingMs);
    return { job, response, calls: loop.sim.calls.slice(before) };
  }

  it("returns the task to the queue, without calling the model or counting an attempt, when too little time is left", async () => {
    const { job, response, calls } = await deliver(deployment.deadlineMarginMs + 1_000);
    expect(response.batchItemFailures).toHaveLength(1);
    expect(calls).toHaveLength(0);
    expect(await store.exists(keys.item(job.jobId, job.items[0]!.id, "result.json"))).toBe(false);
    // Waiting for a fresh delivery is not an attempt: nothing was sent.
    expect(await store.exists(keys.attempt(job.jobId, job.items[0]!.id, 1))).toBe(false);
  });

  it("cuts the thinking budget and the answer to what can be decoded in the time left", async () => {
    // 15 s after the margin at an assumed 50 tokens/s: 750 tokens for reasoning and answer together.
    const { job, response, calls } = await deliver(deployment.deadlineMarginMs + 15_000);
    expect(response.batchItemFailures).toHaveLength(0);
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    // Half the affordable tokens go to thinking, half to the answer.
    expect(call.reasoningTokens).toBeGreaterThan(0);
    expect(call.reasoningTokens).toBeLessThanOrEqual(375);
    expect(call.completionTokens).toBeLessThanOrEqual(750);
    // With time to spare, the same task thinks longer: the cut above came from the deadline.
    const roomy = await deliver(600_000);
    expect(roomy.calls[0]!.reasoningTokens).toBeGreaterThan(375);
    const result = await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json"));
    expect(result).toMatchObject({ status: "succeeded", usage: { outputTokens: call.completionTokens } });
  });
});
