import { beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator, type Coordinator } from "../shared/run/coord.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";

/**
 * After the stream, the item's result is written first: the answer, reasoning and attempt record,
 * then result.json. Settling the call's quota and removing the attempt's partial files wait for
 * result.json (they would only compete with its writes), and are done before the task returns.
 */
describe("the writes after a call", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 30 } });
  let store: ObjectStore;
  beforeAll(async () => {
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/order/report.md", "# Report\n\n" + "Revenue rose in every segment. ".repeat(200), "text/markdown");
  });

  it("settles the quota and removes the partial files after result.json is written, before the task returns", async () => {
    const spec = parseJobText("name: order\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 256 }\nmaxOutputTokens: 256\n", "o.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 3 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, "inputs/order/report.md") }], outputSchema: null },
    );
    const itemId = job.items[0]!.id;
    // One timeline of what the worker did, from the S3 client's and the coordinator's side.
    const events: string[] = [];
    const s3 = loop.stack.s3;
    const mark = (next: (a: unknown) => Promise<unknown>, ctx: { commandName?: string }) => async (args: { input?: { Key?: string } }) => {
      const out = await next(args);
      const key = args.input?.Key ?? "";
      if (key.includes(`/items/${itemId}/`)) events.push(`${ctx.commandName} ${key.slice(key.indexOf(`/items/${itemId}/`) + `/items/${itemId}/`.length)}`);
      return out;
    };
    s3.middlewareStack.add(mark as never, { step: "initialize", name: "writeOrderTimeline" });
    const real = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    const coord: Coordinator = {
      ...real,
      settleQuota: async (ticket, tokens) => {
        events.push("settleQuota start");
        await real.settleQuota(ticket, tokens);
        events.push(`settleQuota done ${tokens}`);
      },
    };
    try {
      const response = await loopbackWorker(loop, { coord })(600_000);
      expect(response.batchItemFailures).toHaveLength(0);
    } finally {
      s3.middlewareStack.remove("writeOrderTimeline");
    }
    const at = (e: string) => {
      const i = events.findIndex((x) => x.startsWith(e));
      expect(i, `${e} in ${events.join(" | ")}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const result = at("PutObjectCommand result.json");
    expect(at("PutObjectCommand answer.md")).toBeLessThan(result);
    expect(at("PutObjectCommand reasoning.md")).toBeLessThan(result);
    expect(at("PutObjectCommand attempts/1.json")).toBeLessThan(result);
    // What waited for the result: the quota's settling and the partial files' removal.
    expect(at("settleQuota start")).toBeGreaterThan(result);
    expect(at("DeleteObjectCommand attempts/1.open.json")).toBeGreaterThan(result);
    // ... and the task returned only once they were done: the quota holds the billed tokens.
    const billed = loop.sim.calls.at(-1)!;
    expect(events).toContain(`settleQuota done ${billed.promptTokens + billed.completionTokens}`);
    expect(await store.exists(keys.item(job.jobId, itemId, "attempts/1.open.json"))).toBe(false);
  });
});
