import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PurgeQueueCommand, ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { S3Event } from "aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { startFleet } from "../shared/local/fleet.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator, type Coordinator } from "../shared/run/coord.ts";
import { inBatches, type Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { submitFromEvent } from "../shared/submit/trigger.ts";
import { useLoopback } from "./helpers/loopback.ts";

/** Deployed entry points deliver at least once: the same schedule tick or upload must make one job. */
describe("submit from schedules and uploads, delivered twice", () => {
  const loop = useLoopback();
  let jobsDir: string;
  let coord: Coordinator;
  let store: ObjectStore;

  beforeAll(async () => {
    jobsDir = await mkdtemp(path.join(tmpdir(), "longdoc-trigger-"));
    coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await writeFile(
      path.join(jobsDir, "monthly.yaml"),
      `name: monthly\ndocuments:\n  - s3: s3://${loop.stack.bucket}/statements/\nprompt: Summarise.\nschedule: "cron(0 6 1 * ? *)"\n`,
    );
    await writeFile(path.join(jobsDir, "inbox-review.yaml"), "name: inbox-review\ndocuments:\n  - s3: s3://unused/\nprompt: Summarise.\ntrigger: upload\n");
    for (const n of [1, 2]) await store.put(`statements/s${n}.md`, `# Statement ${n}\n\nCash ${n}.\n`, "text/markdown");
    await store.put("inbox/inbox-review/memo.md", "# Memo\n\nDebt fell.\n", "text/markdown");
  });

  const deps = () => ({
    s3: loop.stack.s3,
    sqs: loop.stack.sqs,
    bucket: loop.stack.bucket,
    queueUrl: loop.stack.queueUrl,
    jobsDir,
    catalog: loadCatalog(),
    coord,
    maxReceives: loop.stack.maxReceives,
    log: silentLog,
  });

  async function drainQueue(): Promise<string[]> {
    const bodies: string[] = [];
    for (;;) {
      const got = await loop.stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: loop.stack.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
      if (!got.Messages?.length) break;
      bodies.push(...got.Messages.map((m) => m.Body!));
    }
    await loop.stack.sqs.send(new PurgeQueueCommand({ QueueUrl: loop.stack.queueUrl }));
    return bodies;
  }

  it("a schedule tick delivered twice makes one job and queues its tasks once", async () => {
    const tick = { job: "monthly", scheduledTime: "2026-12-01T06:00:00Z" };
    const [first] = await submitFromEvent(deps(), tick);
    const [again] = await submitFromEvent(deps(), tick);
    expect(again!.jobId).toBe(first!.jobId);
    expect(first!.jobId).toMatch(/^monthly-20261201-060000-[0-9a-f]{4}$/);
    expect(await drainQueue()).toHaveLength(2);
    // The next tick is another job.
    const [next] = await submitFromEvent(deps(), { job: "monthly", scheduledTime: "2027-01-01T06:00:00Z" });
    expect(next!.jobId).not.toBe(first!.jobId);
    expect(await drainQueue()).toHaveLength(2);
  });

  it("a packed scheduled job over 1,500 listed documents submits without reading one of them", async () => {
    await writeFile(
      path.join(jobsDir, "packed-monthly.yaml"),
      `name: packed-monthly\ndocuments:\n  - s3: s3://${loop.stack.bucket}/many/\nprompt: Summarise each.\npacking: packed\nschedule: "cron(0 6 1 * ? *)"\n`,
    );
    const docs = Array.from({ length: 1500 }, (_, i) => ({ key: `many/s${String(i).padStart(4, "0")}.md`, text: `# Statement ${i}\n\n${"Cash rose. ".repeat(20 + (i % 400))}\n` }));
    await inBatches(docs, 64, (d) => store.put(d.key, d.text, "text/markdown"));
    let gets = 0;
    loop.stack.s3.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === "GetObjectCommand" && String((args.input as { Key?: string }).Key).startsWith("many/")) gets++;
        return next(args);
      },
      { step: "initialize", name: "countDocumentReads" },
    );
    try {
      const [job] = await submitFromEvent(deps(), { job: "packed-monthly", scheduledTime: "2026-12-01T06:00:00Z" });
      expect(gets).toBe(0);
      expect(job!.items.flatMap((i) => i.documents)).toHaveLength(1500);
      expect(job!.items.length).toBeLessThan(100);
      expect(job!.items.every((i) => i.documents.every((d) => typeof d.bytes === "number"))).toBe(true);
      expect(await drainQueue()).toHaveLength(job!.items.length);
    } finally {
      loop.stack.s3.middlewareStack.remove("countDocumentReads");
    }
  });

  it("an upload event delivered twice makes one job; the same key with new content (another ETag) is a new job", async () => {
    const event = (etag: string): S3Event =>
      ({
        Records: [
          { eventTime: "2026-11-26T10:00:00.000Z", s3: { bucket: { name: loop.stack.bucket }, object: { key: "inbox/inbox-review/memo.md", eTag: etag } } },
        ],
      }) as unknown as S3Event;
    const [a] = await submitFromEvent(deps(), event("etag-1"));
    const [b] = await submitFromEvent(deps(), event("etag-1"));
    expect(b!.jobId).toBe(a!.jobId);
    expect(await drainQueue()).toHaveLength(1);
    const [c] = await submitFromEvent(deps(), event("etag-2"));
    expect(c!.jobId).not.toBe(a!.jobId);
    expect(await drainQueue()).toHaveLength(1);
  });

  it("a submit that fails part-way: the tasks it did queue end skipped without a model call", async () => {
    const docs = [];
    for (let i = 0; i < 15; i++) {
      await store.put(`inputs/partial/d${i}.md`, `# D${i}\n`, "text/markdown");
      docs.push({ source: `d${i}.md`, uri: s3Uri(loop.stack.bucket, `inputs/partial/d${i}.md`) });
    }
    // The queue takes the first batch of ten, then refuses: the submit dies part-way.
    let batches = 0;
    const flaky = {
      send: (cmd: unknown) => {
        if (cmd instanceof SendMessageBatchCommand && ++batches > 1) return Promise.reject(new Error("simulated SQS outage"));
        return loop.stack.sqs.send(cmd as SendMessageBatchCommand);
      },
    } as unknown as SQSClient;
    const spec = parseJobText("name: partial\ndocuments:\n  - path: x\nprompt: Summarise.\n", "p.yaml");
    await expect(
      submitJob({ store, sqs: flaky, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives, coord }, { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: docs, outputSchema: null, jobId: "partial-20261126-000000-abcd" }),
    ).rejects.toThrow(/simulated SQS outage/);
    expect((await coord.readJobEntry("partial-20261126-000000-abcd"))?.state).toBe("failed");

    const before = loop.sim.calls.length;
    const fleet = await startFleet({ stack: loop.stack, workers: 2, settings: loadSettings({ ...loop.env(), LONGDOC_LOG: "error" }), endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL }, log: silentLog });
    try {
      const until = Date.now() + 40_000;
      let results = 0;
      while (results < 10 && Date.now() < until) {
        results = (await store.listKeys(keys.itemsPrefix("partial-20261126-000000-abcd"))).filter((k) => k.endsWith("/result.json")).length;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(results).toBe(10);
      expect(loop.sim.calls.length).toBe(before);
      const one = await store.getJson<{ status: string; error: { kind: string } }>(keys.item("partial-20261126-000000-abcd", "001-d0", "result.json"));
      expect(one).toMatchObject({ status: "skipped", error: { kind: "submit_failed" } });
      expect(await store.getJson<Manifest>(keys.manifest("partial-20261126-000000-abcd"))).toMatchObject({ status: "running" });
    } finally {
      await fleet.stop();
    }
  }, 60_000);
});

