// The end of a job as its own step (shared/run/finalize.ts), on the local stack: the emulated S3,
// SNS and the coordination table (dynalite). A finalizer that dies half-way and runs again writes
// one manifest and sends one job-ended event; so do two finalizers racing on the same job.
import type { EmfRecord } from "../shared/metrics/emf.ts";
import { SubscribeCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator, type Coordinator } from "../shared/run/coord.ts";
import { createFinalizeHandler, finalizeJob, finalizeKeys, queueFinalizer, type FinalizeDeps } from "../shared/run/finalize.ts";
import { inBatches, resultWithoutCall, type Manifest } from "../shared/run/manifest.ts";
import { createNotifier, type JobEndedEvent, type JobNotifier } from "../shared/run/notify.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { toSqsRecord } from "../shared/local/poller.ts";

let stack: LocalStack;
let store: ObjectStore;
let coord: Coordinator;
let events: string;

beforeAll(async () => {
  stack = await startLocalStack();
  store = new ObjectStore(stack.s3, stack.bucket);
  coord = createCoordinator(stack.dynamo.client, stack.dynamo.table);
  // A subscriber of the job-ended topic: every event published lands here.
  events = (await stack.sqs.send(new CreateQueueCommand({ QueueName: "finalize-test-events" }))).QueueUrl!;
  const arn = (await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: events, AttributeNames: ["QueueArn"] }))).Attributes!.QueueArn!;
  await stack.sns.send(new SubscribeCommand({ TopicArn: stack.topicArn, Protocol: "sqs", Endpoint: arn, Attributes: { RawMessageDelivery: "true" } }));
});
afterAll(async () => {
  await stack?.stop();
});

const eventsFor = async (jobId: string): Promise<JobEndedEvent[]> => {
  const out: JobEndedEvent[] = [];
  for (;;) {
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: events, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    if (!got.Messages?.length) return out.filter((e) => e.jobId === jobId);
    out.push(...got.Messages.map((m) => JSON.parse(m.Body!) as JobEndedEvent));
  }
};

/** A submitted job of `n` items, every item with its result (as the workers leave it), all counted finished. */
async function finishedJob(name: string, n: number): Promise<JobRecord> {
  await store.put(`inputs/${name}/note.md`, "# Note\n", "text/markdown");
  const spec = parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\n`, `${name}.yaml`);
  const documents = Array.from({ length: n }, (_, i) => ({ source: `note-${i}.md`, uri: s3Uri(stack.bucket, `inputs/${name}/note.md`) }));
  const job = await submitJob({ store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: 5, coord }, { spec, model: getModel(loadCatalog(), "qwen3-max"), documents, outputSchema: null });
  const at = new Date().toISOString();
  await inBatches(job.items, 16, async (item) => {
    const status = Number(item.id.slice(0, 3)) % 7 === 0 ? "failed" : "succeeded";
    await store.putJson(keys.item(job.jobId, item.id, "result.json"), resultWithoutCall(job, item.id, { status, attempts: 1, error: { kind: "model_error", message: "x" }, at }));
    await coord.finishItem(job.jobId, item.id, status, job.items.length);
  });
  return job;
}

const counting = (inner: JobNotifier) => {
  let calls = 0;
  return { notifier: { jobEnded: (...a: Parameters<JobNotifier["jobEnded"]>) => ((calls += 1), inner.jobEnded(...a)) } satisfies JobNotifier, calls: () => calls };
};

const deps = (o: Partial<FinalizeDeps> = {}): FinalizeDeps => ({
  s3: stack.s3,
  coord,
  log: silentLog,
  notifier: createNotifier({ log: silentLog, topic: { sns: stack.sns, topicArn: stack.topicArn } }),
  partItems: 10,
  partsInFlight: 2,
  ...o,
});

describe("the finalizer", () => {
  it("killed half-way (after some parts) and run again: it reuses the parts, writes one manifest listing every item once, and sends one event", async () => {
    const job = await finishedJob("kill-half", 95);
    let built = 0;
    const killed = finalizeJob(
      deps({
        onPart: () => {
          // The invocation dies after its fourth stored part: nothing after this point runs.
          if (++built === 4) throw new Error("killed");
        },
      }),
      { jobId: job.jobId, bucket: stack.bucket },
    );
    await expect(killed).rejects.toThrow("killed");
    // The manifest is still submit's (status running), and no event went out.
    expect((await store.getJson<Manifest>(keys.manifest(job.jobId)))!.status).toBe("running");
    expect(await eventsFor(job.jobId)).toEqual([]);
    const stored = (await store.listKeys(finalizeKeys.prefix(job.jobId))).length;
    expect(stored).toBeGreaterThanOrEqual(4);

    const metrics: EmfRecord[] = [];
    const again = await finalizeJob({ ...deps(), metrics: (r) => metrics.push(r) }, { jobId: job.jobId, bucket: stack.bucket });
    expect(again.partsReused).toBe(stored);
    expect(again.partsReused + again.partsBuilt).toBe(10);
    expect(again.event).toBe("sent");
    const manifest = (await store.getJson<Manifest>(keys.manifest(job.jobId)))!;
    expect(manifest.items.map((i) => i.id)).toEqual(job.items.map((i) => i.id));
    expect(new Set(manifest.items.map((i) => i.id)).size).toBe(95);
    expect(manifest).toMatchObject({ status: "partial", counts: { total: 95, succeeded: 95 - 13, failed: 13, skipped: 0 } });
    expect(await store.exists(keys.report(job.jobId))).toBe(true);

    // Once the manifest is final the parts are removed.
    expect(await store.listKeys(finalizeKeys.prefix(job.jobId))).toEqual([]);
    // A third delivery of the same request (SQS delivers at least once): the same manifest, no second event.
    const third = await finalizeJob({ ...deps(), metrics: (r) => metrics.push(r) }, { jobId: job.jobId, bucket: stack.bucket });
    expect(third.event).toBe("already-sent");
    // The job's end is one metrics line (EMF), from the finalizer that sent its event, not from the third.
    expect(metrics).toHaveLength(1);
    const line = JSON.parse(JSON.stringify(metrics[0])) as Record<string, unknown> & { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] } };
    expect(line._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: "longdoc", Dimensions: [["Service"], ["Service", "Status"]] });
    for (const m of line._aws.CloudWatchMetrics[0]!.Metrics) expect(typeof line[m.Name]).toBe("number");
    expect(line).toMatchObject({ Service: "longdoc-finalizer", Status: "partial", JobsEnded: 1, JobItems: 95, JobItemsSucceeded: 82, JobItemsFailed: 13, JobItemsSkipped: 0 });
    expect(await store.getJson<Manifest>(keys.manifest(job.jobId))).toEqual(manifest);
    const sent = await eventsFor(job.jobId);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ jobId: job.jobId, status: "partial", counts: manifest.counts });
  });

  it("killed after it claimed the event but before sending it: the retry sends it once its lease lapsed, and only then", async () => {
    const job = await finishedJob("kill-event", 12);
    const inner = createNotifier({ log: silentLog, topic: { sns: stack.sns, topicArn: stack.topicArn } });
    const dying: JobNotifier = { jobEnded: () => Promise.reject(new Error("killed before publishing")) };
    await expect(finalizeJob(deps({ notifier: dying, leaseMs: 1500 }), { jobId: job.jobId, bucket: stack.bucket })).rejects.toThrow("killed");
    // Within the dead finalizer's lease, another does not send it (it cannot tell death from slowness).
    expect((await finalizeJob(deps({ notifier: inner, leaseMs: 1500 }), { jobId: job.jobId, bucket: stack.bucket })).event).toBe("held");
    await new Promise((r) => setTimeout(r, 1600));
    expect((await finalizeJob(deps({ notifier: inner, leaseMs: 1500 }), { jobId: job.jobId, bucket: stack.bucket })).event).toBe("sent");
    expect(await eventsFor(job.jobId)).toHaveLength(1);
  });

  it("two finalizers of the same job at once: one manifest, one event", async () => {
    const job = await finishedJob("race", 40);
    const a = counting(createNotifier({ log: silentLog, topic: { sns: stack.sns, topicArn: stack.topicArn } }));
    const b = counting(createNotifier({ log: silentLog, topic: { sns: stack.sns, topicArn: stack.topicArn } }));
    const outs = await Promise.all([finalizeJob(deps({ notifier: a.notifier }), { jobId: job.jobId, bucket: stack.bucket }), finalizeJob(deps({ notifier: b.notifier }), { jobId: job.jobId, bucket: stack.bucket })]);
    expect(outs.map((o) => o.event).sort()).toEqual(expect.arrayContaining(["sent"]));
    expect(a.calls() + b.calls()).toBe(1);
    expect(await eventsFor(job.jobId)).toHaveLength(1);
    expect((await store.getJson<Manifest>(keys.manifest(job.jobId)))!.counts.total).toBe(40);
  });

  it("a job not yet finished: the manifest is written as it stands, no part of an unfinished slice is kept, no event", async () => {
    const job = await finishedJob("early", 25);
    await store.delete(keys.item(job.jobId, job.items[24]!.id, "result.json"));
    const out = await finalizeJob(deps(), { jobId: job.jobId, bucket: stack.bucket });
    expect(out.event).toBe("not-final");
    expect(out.manifest.status).toBe("running");
    // Parts 0 and 1 are whole and kept; part 2 (items 20-24) misses a result, so it is read again next time.
    expect((await store.listKeys(finalizeKeys.prefix(job.jobId))).map((k) => k.split("/").pop()).sort()).toEqual(["0.json", "1.json"]);
    expect(await eventsFor(job.jobId)).toEqual([]);
  });

  it("runs from its queue: the message a worker sends is handled in the finalizer's own invocation", async () => {
    const job = await finishedJob("queued", 15);
    await queueFinalizer(stack.sqs, stack.finalizeUrl).request({ jobId: job.jobId, bucket: stack.bucket });
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.finalizeUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 2, MessageSystemAttributeNames: ["All"] }));
    const handler = createFinalizeHandler(async () => ({ ...deps(), sqs: stack.sqs, queueUrl: stack.finalizeUrl, leaseS: 5 }));
    const out = await handler({ Records: got.Messages!.map((m) => toSqsRecord(m, "arn:aws:sqs:us-east-1:000000000000:longdoc-finalize")) });
    expect(out.batchItemFailures).toEqual([]);
    expect((await store.getJson<Manifest>(keys.manifest(job.jobId)))!.status).toBe("partial");
    expect(await eventsFor(job.jobId)).toHaveLength(1);
  });
});
