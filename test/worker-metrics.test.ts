// The worker's metrics as CloudWatch embedded metric format: the real worker handler on the
// loopback stack and simulator prints one EMF line per delivery (a 429 handed back, then the
// item settled), and each line parses as EMF with the figures of the item's result.
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { toSqsRecord } from "../shared/local/poller.ts";
import { silentLog } from "../shared/log.ts";
import { emfRecord, printEmf, type EmfRecord } from "../shared/metrics/emf.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { createWorkerDeps } from "../shared/worker/deps.ts";
import { createWorkerHandler } from "../shared/worker/handlers.ts";
import { METRICS_NAMESPACE } from "../shared/worker/metrics.ts";
import { useLoopback } from "./helpers/loopback.ts";

/**
 * Reads a log line as CloudWatch does under the EMF specification: a JSON object whose _aws
 * names a Timestamp and directives; every dimension a string member of the object, every
 * metric a number member. Returns the metrics by dimension set ("Service,Status" → {ItemsFinished: 1}).
 */
function parseEmf(line: string): { record: EmfRecord; byDimensions: Map<string, Record<string, number>> } {
  expect(line.endsWith("\n")).toBe(true);
  expect(line.trimEnd()).not.toContain("\n");
  const record = JSON.parse(line) as EmfRecord;
  expect(Number.isInteger(record._aws.Timestamp)).toBe(true);
  expect(Math.abs(record._aws.Timestamp - Date.now())).toBeLessThan(60_000);
  const byDimensions = new Map<string, Record<string, number>>();
  for (const d of record._aws.CloudWatchMetrics) {
    expect(d.Namespace).toBe(METRICS_NAMESPACE);
    expect(d.Metrics.length).toBeGreaterThan(0);
    for (const set of d.Dimensions) {
      for (const name of set) expect(typeof record[name], `dimension ${name}`).toBe("string");
      const metrics = byDimensions.get(set.join(",")) ?? {};
      for (const m of d.Metrics) {
        expect(typeof record[m.Name], `metric ${m.Name}`).toBe("number");
        expect(["Count", "None"]).toContain(m.Unit);
        metrics[m.Name] = record[m.Name] as number;
      }
      byDimensions.set(set.join(","), metrics);
    }
  }
  return { record, byDimensions };
}

describe("EMF lines", () => {
  afterEach(() => vi.restoreAllMocks());

  it("printEmf writes one JSON line to stdout; a directive naming a missing or wrongly typed field is refused", () => {
    const writes: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s) => (writes.push(String(s)), true));
    printEmf(emfRecord("longdoc", [{ dimensions: [["Service"]], metrics: [{ name: "ModelCalls", unit: "Count" }] }], { Service: "s", ModelCalls: 2 }, Date.now()));
    vi.restoreAllMocks();
    expect(writes).toHaveLength(1);
    expect(parseEmf(writes[0]!).byDimensions.get("Service")).toEqual({ ModelCalls: 2 });
    expect(() => emfRecord("longdoc", [{ dimensions: [["Service"]], metrics: [{ name: "X", unit: "Count" }] }], { Service: "s" }, 0)).toThrow("EMF: metric 'X' needs a finite number");
    expect(() => emfRecord("longdoc", [{ dimensions: [["JobId"]], metrics: [] }], { JobId: 3 }, 0)).toThrow("EMF: dimension 'JobId' needs a string");
  });
});

describe("a worker's deliveries on the loopback stack", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });

  it("prints one EMF line per delivery: a 429 handed back (a call, rate-limited, a retry), then the item settled with its tokens and spend", async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/metrics/memo.md", "# Memo\n\nRevenue rose 4% in Q3.\n", "text/markdown");
    const spec = parseJobText("name: metrics\ndocuments:\n  - path: x\nprompt: What rose?\nmaxOutputTokens: 200\n", "metrics.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 5 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "memo.md", uri: s3Uri(loop.stack.bucket, "inputs/metrics/memo.md") }], outputSchema: null },
    );
    const printed: string[] = [];
    const handler = createWorkerHandler(() =>
      createWorkerDeps({
        s3: loop.stack.s3,
        sqs: loop.stack.sqs,
        queueUrl: loop.stack.queueUrl,
        coord: createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table),
        catalog: loadCatalog(),
        log: silentLog,
        apiKey: "sk-test",
        baseURL: loop.sim.baseURL,
        timing: { backoffBaseMs: 10, backoffCapMs: 10 },
        // What printEmf writes, kept here.
        metrics: (r) => void printed.push(JSON.stringify(r) + "\n"),
      }),
    );
    const deliver = async () => {
      const { Messages } = await loop.stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: loop.stack.queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 5, MessageSystemAttributeNames: ["All"] }));
      if (!Messages?.length) throw new Error("no task came from the queue within 5 s");
      return handler({ Records: [toSqsRecord(Messages[0]!, "arn:aws:sqs:us-east-1:000000000000:longdoc-tasks")] }, { getRemainingTimeInMillis: () => 600_000 });
    };

    loop.sim.injectFaults({ kind: "429" });
    expect((await deliver()).batchItemFailures).toHaveLength(1);
    expect(printed).toHaveLength(1);
    const refused = parseEmf(printed[0]!);
    expect(refused.byDimensions.get("Service")).toMatchObject({ Deliveries: 1, ModelCalls: 1, RateLimited: 1, Retries: 1, QuotaWaits: 0, InfraFaults: 0, InputTokens: 0, Spend: 0 });
    expect(refused.byDimensions.has("Service,Status")).toBe(false);
    expect(refused.record).toMatchObject({ JobId: job.jobId, ItemId: job.items[0]!.id, Service: "longdoc-worker" });

    expect((await deliver()).batchItemFailures).toHaveLength(0);
    expect(printed).toHaveLength(2);
    const result = (await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json")))!;
    expect(result.status).toBe("succeeded");
    const settled = parseEmf(printed[1]!);
    expect(settled.byDimensions.get("Service")).toMatchObject({ Deliveries: 1, ModelCalls: 1, RateLimited: 0, Retries: 0, InputTokens: result.usage.inputTokens, OutputTokens: result.usage.outputTokens });
    expect(settled.byDimensions.get("Service")!.Spend).toBeCloseTo(result.cost, 6);
    expect(settled.byDimensions.get("Service,Status")).toEqual({ ItemsFinished: 1 });
    expect(settled.record.Status).toBe("succeeded");
    expect(settled.byDimensions.get("Service,JobId")!.Spend).toBeCloseTo(result.cost, 6);
  }, 60_000);
});
