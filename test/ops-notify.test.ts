// The end of a job, told once: an SNS message on the stack's topic (fauxqs here, as for SQS and
// S3) and a signed call to the job's webhook, checked by a receiver on loopback HTTP (a loopback
// receiver has no certificate, so LONGDOC_WEBHOOK_LOOPBACK_HTTP=1 lets https://127.0.0.1 go over http).
import { createServer, type IncomingMessage, type Server } from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SubscribeCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, GetQueueAttributesCommand, PurgeQueueCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { createCoordinator } from "../shared/run/coord.ts";
import { createNotifier } from "../shared/run/notify.ts";
import { recordDeadTask } from "../shared/worker/dead.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cancelLocalJob, runLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { loadCatalog } from "../shared/model/catalog.ts";
import type { NotifyRecord, JobEndedEvent } from "../shared/run/notify.ts";
import { createHmac, timingSafeEqual } from "node:crypto";
import { deliverWebhook, ID_HEADER, SIGNATURE_HEADER, signWebhook, TIMESTAMP_HEADER, verifyWebhook } from "../shared/run/webhook.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { loadJobForSubmit, submitLoadedJob } from "../shared/submit/load.ts";
import { parseJobText } from "../shared/job/load.ts";

/** A Standard Webhooks secret: whsec_ and the base64 of 32 bytes. */
const SECRET = `whsec_${Buffer.from("longdoc-test-webhook-secret-0123").toString("base64")}`;

interface Received {
  body: string;
  headers: Record<string, string | undefined>;
}

/**
 * A receiver's check written from the Standard Webhooks specification alone, not with longdoc's
 * code: the key is the base64 after `whsec_`; the signed content is `<webhook-id>.<webhook-timestamp>.<body>`;
 * `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>`; timestamps over
 * five minutes old are refused.
 */
function specVerify(secret: string, headers: Record<string, string | undefined>, body: string, nowS = Math.floor(Date.now() / 1000)): boolean {
  const id = headers["webhook-id"];
  const ts = headers["webhook-timestamp"];
  const sigs = headers["webhook-signature"];
  if (!id || !ts || !sigs) return false;
  if (Math.abs(nowS - Number(ts)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = Buffer.from(createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64"));
  return sigs.split(" ").some((entry) => {
    const [version, sig] = entry.split(",");
    const got = Buffer.from(sig ?? "");
    return version === "v1" && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

/** A webhook receiver on loopback HTTP; `answers` are the statuses of its first calls, then 200. */
async function receiver(answers: number[] = []) {
  const calls: Received[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = Object.fromEntries([ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER].map((h) => [h, req.headers[h] as string | undefined]));
      calls.push({ body: Buffer.concat(chunks).toString("utf8"), headers });
      res.statusCode = answers[calls.length - 1] ?? 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { calls, url: `https://127.0.0.1:${port}/hooks/longdoc?token=abc`, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("signed webhook calls", () => {
  it("signs as Standard Webhooks does: the specification's own example, and a receiver's check written from the specification", async () => {
    // The example in the Standard Webhooks specification's reference libraries.
    expect(signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", '{"test": 2432232314}')).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    const r = await receiver([503, 500]);
    try {
      const body = JSON.stringify({ jobId: "j-1", status: "succeeded" });
      const waits: number[] = [];
      const out = await deliverWebhook(r.url, body, { secret: SECRET, loopbackHttp: true, backoffBaseMs: 100, random: () => 1, sleep: async (ms) => void waits.push(ms) });
      expect(out).toEqual({ ok: true, attempts: 3, status: 200, error: null });
      expect(waits).toEqual([100, 200]);
      expect(r.calls).toHaveLength(3);
      // One message id for every attempt, so the receiver can drop a repeat.
      expect(new Set(r.calls.map((c) => c.headers[ID_HEADER])).size).toBe(1);
      expect(r.calls[0]!.headers[ID_HEADER]).toMatch(/^msg_[0-9a-f]{32}$/);
      for (const c of r.calls) {
        expect(c.body).toBe(body);
        expect(c.headers[SIGNATURE_HEADER]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
        expect(specVerify(SECRET, c.headers, c.body)).toBe(true);
        expect(verifyWebhook(SECRET, c.headers, c.body)).toBe(true);
        expect(c.body).not.toContain(SECRET);
      }
      // The independent check refuses a changed body, another secret and a stale call.
      const c = r.calls[0]!;
      expect(specVerify(SECRET, c.headers, c.body.replace("j-1", "j-2"))).toBe(false);
      expect(specVerify(`whsec_${Buffer.from("another-secret-of-32-bytes-00000").toString("base64")}`, c.headers, c.body)).toBe(false);
      expect(specVerify(SECRET, c.headers, c.body, Number(c.headers[TIMESTAMP_HEADER]) + 3600)).toBe(false);
    } finally {
      await r.close();
    }
  });

  it("takes a 4xx as the receiver's final answer, and gives up on a dead receiver after the bounded attempts", async () => {
    const r = await receiver([400]);
    const bad = await deliverWebhook(r.url, "{}", { secret: SECRET, loopbackHttp: true, sleep: async () => {} });
    expect(bad).toEqual({ ok: false, attempts: 1, status: 400, error: "the receiver answered 400" });
    await r.close();
    const dead = await deliverWebhook(r.url, "{}", { secret: SECRET, loopbackHttp: true, attempts: 3, sleep: async () => {} });
    expect(dead).toMatchObject({ ok: false, attempts: 3, status: null });
    expect(dead.error).toMatch(/^no response \(ECONNREFUSED\)$/);
  });

  it("calls https only: without the loopback flag a plain-http receiver is never sent the body in clear", async () => {
    const r = await receiver();
    try {
      const out = await deliverWebhook(r.url, "{}", { secret: SECRET, attempts: 1 });
      expect(out.ok).toBe(false);
      expect(r.calls).toHaveLength(0);
    } finally {
      await r.close();
    }
  });

  it("verifyWebhook refuses a changed body, another secret or a stale timestamp", () => {
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = (t: string, body: string) => ({ [ID_HEADER]: "msg_1", [TIMESTAMP_HEADER]: t, [SIGNATURE_HEADER]: signWebhook(SECRET, "msg_1", t, body) });
    expect(verifyWebhook(SECRET, headers(ts, '{"a":1}'), '{"a":1}')).toBe(true);
    expect(verifyWebhook(SECRET, headers(ts, '{"a":1}'), '{"a":2}')).toBe(false);
    expect(verifyWebhook(`whsec_${Buffer.from("another-secret-of-32-bytes-00000").toString("base64")}`, headers(ts, '{"a":1}'), '{"a":1}')).toBe(false);
    const old = String(Number(ts) - 3600);
    expect(verifyWebhook(SECRET, headers(old, "{}"), "{}")).toBe(false);
  });

  it("settings: LONGDOC_WEBHOOK_SECRET must be a Standard Webhooks secret (whsec_ + base64); the loopback flag is 1 or 0", () => {
    for (const bad of ["short", "test-webhook-secret-0123456789abcdef", "whsec_not base64!", `whsec_${Buffer.alloc(8).toString("base64")}`]) {
      expect(() => loadSettings({ LONGDOC_WEBHOOK_SECRET: bad })).toThrow(/LONGDOC_WEBHOOK_SECRET must be a Standard Webhooks secret: 'whsec_' followed by the base64 of 24 to 64 random bytes/);
    }
    expect(() => loadSettings({ LONGDOC_WEBHOOK_LOOPBACK_HTTP: "yes" })).toThrow(/LONGDOC_WEBHOOK_LOOPBACK_HTTP must be 1 or 0/);
    expect(loadSettings({ LONGDOC_WEBHOOK_SECRET: SECRET, LONGDOC_WEBHOOK_LOOPBACK_HTTP: "1", LONGDOC_EVENTS_TOPIC: "arn:aws:sns:us-east-1:1:t" }).notify).toEqual({
      topicArn: "arn:aws:sns:us-east-1:1:t",
      webhookSecret: SECRET,
      loopbackHttp: true,
    });
  });

  it("job files: notify.webhook must be https, without credentials", () => {
    const job = (url: string) => `name: w\ndocuments:\n  - path: a.md\nprompt: p\nnotify:\n  webhook: ${url}\n`;
    expect(parseJobText(job("https://hooks.example.com/x"), "w.yaml").notify).toEqual({ webhook: "https://hooks.example.com/x" });
    expect(() => parseJobText(job("http://hooks.example.com/x"), "w.yaml")).toThrow(/^w\.yaml:6: notify\.webhook: must be an https:\/\/ URL \(never http/);
    expect(() => parseJobText(job("https://u:p@hooks.example.com/x"), "w.yaml")).toThrow(/w\.yaml:6: notify\.webhook: must not carry a user name or password/);
  });
});

describe("the job-finished event on the local stack", () => {
  let stack: LocalStack;
  let sim: Simulator;
  let dir: string;
  let queueUrl: string;
  beforeAll(async () => {
    stack = await startLocalStack();
    sim = await startSimulator({ port: 0 });
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-notify-"));
    // A subscriber of the topic, as a team's pipeline would have: a queue with raw delivery.
    queueUrl = (await stack.sqs.send(new CreateQueueCommand({ QueueName: "pipeline-events" }))).QueueUrl!;
    const arn = (await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }))).Attributes!.QueueArn!;
    await stack.sns.send(new SubscribeCommand({ TopicArn: stack.topicArn, Protocol: "sqs", Endpoint: arn, Attributes: { RawMessageDelivery: "true" } }));
  });
  afterAll(async () => {
    await sim?.stop();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const drainEvents = async (): Promise<JobEndedEvent[]> => {
    const out: JobEndedEvent[] = [];
    for (;;) {
      const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
      if (!got.Messages?.length) return out;
      out.push(...got.Messages.map((m) => JSON.parse(m.Body!) as JobEndedEvent));
    }
  };

  const makeJob = async (name: string, docs: number, webhook: string) => {
    const jobDir = path.join(dir, name);
    await mkdir(path.join(jobDir, "docs"), { recursive: true });
    for (let i = 1; i <= docs; i++) await writeFile(path.join(jobDir, "docs", `d${i}.md`), `# Doc ${i}\n\nRevenue ${i * 10}.\n`);
    const jobFile = path.join(jobDir, `${name}.yaml`);
    await writeFile(jobFile, `name: ${name}\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nmaxOutputTokens: 200\nnotify:\n  webhook: ${webhook}\n`);
    return jobFile;
  };

  it("publishes one event with the run's figures and calls the webhook once, signed, when two workers finish the last items together", async () => {
    const hook = await receiver();
    try {
      const jobFile = await makeJob("notified", 2, hook.url);
      const settings = loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL, LONGDOC_WEBHOOK_SECRET: SECRET, LONGDOC_WEBHOOK_LOOPBACK_HTTP: "1" });
      const run = await runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out"), workers: 2, settings, log: silentLog, stack });
      expect(run.manifest.status).toBe("succeeded");
      const expected = {
        type: "longdoc.job.finished",
        version: 1,
        jobId: run.job.jobId,
        job: "notified",
        status: "succeeded",
        counts: { total: 2, succeeded: 2, failed: 0, skipped: 0 },
        cost: run.manifest.cost,
        costUsd: run.manifest.costUsd,
        currency: "USD",
        manifestUri: `s3://${stack.bucket}/runs/${run.job.jobId}/manifest.json`,
        finishedAt: run.manifest.finishedAt,
      };
      expect(run.manifest.costUsd).toBeGreaterThan(0);
      expect(await drainEvents()).toEqual([expected]);
      expect(hook.calls).toHaveLength(1);
      expect(JSON.parse(hook.calls[0]!.body)).toEqual(expected);
      expect(specVerify(SECRET, hook.calls[0]!.headers, hook.calls[0]!.body)).toBe(true);
      const record = JSON.parse(await readFile(path.join(run.outDir, "notify.json"), "utf8")) as NotifyRecord;
      expect(record).toMatchObject({ event: expected, topic: { messageId: expect.any(String) }, webhook: { url: `https://127.0.0.1:${hook.port}/hooks/longdoc`, id: hook.calls[0]!.headers[ID_HEADER], pending: false, ok: true, attempts: 1, status: 200 } });
      // The secret is in no file of the run.
      expect(JSON.stringify(record)).not.toContain(SECRET);
    } finally {
      await hook.close();
    }
  }, 90_000);

  it("two recorders finishing a job's last two items at the same moment publish one event between them", async () => {
    const jobFile = await makeJob("together", 2, "https://hooks.example.com/unused");
    const job = await submitLoadedJob({ s3: stack.s3, sqs: stack.sqs, bucket: stack.bucket, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives }, await loadJobForSubmit(jobFile, loadCatalog()));
    await stack.sqs.send(new PurgeQueueCommand({ QueueUrl: stack.queueUrl }));
    const coord = createCoordinator(stack.dynamo.client, stack.dynamo.table);
    const notifier = createNotifier({ log: silentLog, topic: { sns: stack.sns, topicArn: stack.topicArn } });
    // Both items end at once through the dead-letter path (the same finish counter and manifest writer as the worker).
    await Promise.all(job.items.map((i) => recordDeadTask({ s3: stack.s3, coord, log: silentLog, notifier }, { v: 1, jobId: job.jobId, itemId: i.id, bucket: stack.bucket, documents: [] }, 1)));
    const events = await drainEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ jobId: job.jobId, status: "failed", counts: { total: 2, failed: 2 } });
  }, 60_000);

  it("a cancel that ends a job publishes one event saying cancelled; without a secret the webhook is not called unsigned", async () => {
    const hook = await receiver();
    try {
      const jobFile = await makeJob("cancelled", 3, hook.url);
      const job = await submitLoadedJob({ s3: stack.s3, sqs: stack.sqs, bucket: stack.bucket, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives }, await loadJobForSubmit(jobFile, loadCatalog()));
      const settings = loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL, LONGDOC_WEBHOOK_LOOPBACK_HTTP: "1" });
      const c = await cancelLocalJob({ jobId: job.jobId, stack, outDir: path.join(dir, "out"), workers: 1, settings, log: silentLog });
      expect(c.state).toBe("cancelled");
      const events = await drainEvents();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ jobId: job.jobId, status: "cancelled", counts: { total: 3, skipped: 3 }, costUsd: 0 });
      expect(hook.calls).toHaveLength(0);
      const record = JSON.parse(await readFile(path.join(dir, "out", job.jobId, "notify.json"), "utf8")) as NotifyRecord;
      expect(record.webhook).toMatchObject({ ok: false, attempts: 0, error: expect.stringMatching(/^no webhook secret is configured/) });
    } finally {
      await hook.close();
    }
  }, 60_000);
});
