// The infra modules run here against a recording fake of SST's globals, not SST's engine
// (which needs Pulumi and an AWS account). The fake accepts only option names that SST v4's
// components take (anomalyco/sst platform/src/components, v4.17), so a misspelt option
// fails here as it would at deploy time.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deployment } from "../shared/settings.ts";
import { keys } from "../shared/run/store.ts";
import { deploy } from "../infra/index.ts";
import { readJobs } from "../infra/jobs.ts";
import { checkQueueSettings, DLQ_HANDLER, WORKER_HANDLER } from "../infra/queue.ts";
import { SUBMIT_HANDLER } from "../infra/submit.ts";
import { ALARM_THRESHOLDS } from "../infra/monitoring.ts";
import { METRIC, METRICS_NAMESPACE, SERVICE } from "../shared/worker/metrics.ts";
import { FINALIZE_HANDLER } from "../infra/finalize.ts";
import { BATCH_POLL_HANDLER, BATCH_POLL_SCHEDULE } from "../infra/batch-poll.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

// ---------------------------------------------------------------------------------------------
// The fake: one record per component, in creation order.

type Args = Record<string, any>;
interface Rec {
  type: "Bucket" | "Queue" | "Function" | "CronV2" | "Secret" | "Dynamo" | "SnsTopic" | "FunctionEventInvokeConfig" | "Dashboard" | "MetricAlarm";
  name: string;
  args: Args;
  self: any;
}

const KEYS = {
  queue: ["fifo", "delay", "visibilityTimeout", "dlq", "transform"],
  queueSubscriber: ["filters", "batch", "transform"],
  batch: ["size", "window", "partialResponses"],
  fn: [
    "handler", "description", "runtime", "bundle", "timeout", "memory", "storage", "environment", "permissions",
    "policies", "link", "streaming", "logging", "architecture", "role", "url", "nodejs", "copyFiles", "concurrency",
    "versioning", "layers", "volume", "tags", "vpc", "hook", "transform", "name", "dev", "live", "retries",
  ],
  cron: ["job", "function", "task", "event", "schedule", "timezone", "enabled", "retries", "dlq", "transform"],
  notify: ["notifications", "transform"],
  notification: ["name", "function", "queue", "topic", "events", "filterPrefix", "filterSuffix"],
};

function only(what: string, args: Args | undefined, allowed: string[]) {
  for (const k of Object.keys(args ?? {})) {
    if (!allowed.includes(k)) throw new Error(`fake sst: ${what} has no option '${k}' in SST v4`);
  }
}

function installFakeSst() {
  const recs: Rec[] = [];
  const record = (type: Rec["type"], name: string, args: Args, self: any) => {
    if (recs.some((r) => r.type === type && r.name === name)) throw new Error(`fake sst: two ${type} components named ${name}`);
    recs.push({ type, name, args, self });
  };
  const fnArgs = (what: string, f: string | Args) => {
    const a = typeof f === "string" ? { handler: f } : f;
    only(what, a, KEYS.fn);
    return a;
  };

  class Bucket {
    name: string;
    arn: string;
    notifications?: Args;
    constructor(name: string, args: Args = {}) {
      this.name = `fake-${name.toLowerCase()}-bucket`;
      this.arn = `arn:aws:s3:::${this.name}`;
      record("Bucket", name, args, this);
    }
    notify(args: Args) {
      if (this.notifications) throw new Error(`fake sst: Cannot call "notify" on a bucket multiple times`);
      only("Bucket.notify", args, KEYS.notify);
      for (const n of args.notifications) only("Bucket.notify notification", n, KEYS.notification);
      this.notifications = args;
      return {};
    }
  }
  class Queue {
    arn: string;
    url: string;
    subscriber?: { fn: Args; args: Args };
    constructor(name: string, args: Args = {}) {
      only(`Queue ${name}`, args, KEYS.queue);
      this.arn = `arn:aws:sqs:us-east-1:123456789012:fake-${name}`;
      this.url = `https://sqs.us-east-1.amazonaws.com/123456789012/fake-${name}`;
      record("Queue", name, args, this);
    }
    subscribe(subscriber: string | Args, args: Args = {}) {
      if (this.subscriber) throw new Error("fake sst: An SQS Queue can only have one subscriber.");
      only("Queue.subscribe", args, KEYS.queueSubscriber);
      only("Queue.subscribe batch", args.batch, KEYS.batch);
      this.subscriber = { fn: fnArgs("Queue subscriber", subscriber), args };
      return {};
    }
  }
  class Function {
    name: string;
    arn: string;
    constructor(name: string, args: Args) {
      fnArgs(`Function ${name}`, args);
      this.name = `fake-${name}`;
      this.arn = `arn:aws:lambda:us-east-1:123456789012:function:fake-${name}`;
      record("Function", name, args, this);
    }
  }
  class CronV2 {
    constructor(name: string, args: Args) {
      only(`CronV2 ${name}`, args, KEYS.cron);
      if (!args.function) throw new Error(`fake sst: CronV2 ${name} needs a function`);
      // An inline function (FunctionArgs) takes the Function's options.
      if (typeof args.function === "object" && !("arn" in args.function)) fnArgs(`CronV2 ${name} function`, args.function);
      if (!/^(cron|rate|at)\(.+\)$/.test(args.schedule)) throw new Error(`fake sst: CronV2 ${name} schedule '${args.schedule}'`);
      record("CronV2", name, args, this);
    }
  }
  class Dynamo {
    name: string;
    arn: string;
    constructor(name: string, args: Args) {
      only(`Dynamo ${name}`, args, ["fields", "primaryIndex", "ttl", "deletionProtection", "transform"]);
      this.name = `fake-${name.toLowerCase()}-table`;
      this.arn = `arn:aws:dynamodb:us-east-1:123456789012:table/${this.name}`;
      record("Dynamo", name, args, this);
    }
  }
  class SnsTopic {
    name: string;
    arn: string;
    constructor(name: string, args: Args = {}) {
      only(`SnsTopic ${name}`, args, ["fifo", "transform"]);
      this.name = `fake-${name}`;
      this.arn = `arn:aws:sns:us-east-1:123456789012:fake-${name}`;
      record("SnsTopic", name, args, this);
    }
  }
  class Secret {
    name: string;
    value = "fake-secret-value";
    constructor(name: string) {
      this.name = name;
      record("Secret", name, {}, this);
    }
  }

  const g = globalThis as any;
  g.sst = { Secret, aws: { Bucket, Queue, Function, CronV2, Dynamo, SnsTopic } };
  // Pulumi's AWS provider, which SST exposes as the global \`aws\`: only what infra/ uses.
  class FunctionEventInvokeConfig {
    constructor(name: string, args: Args) {
      only(`FunctionEventInvokeConfig ${name}`, args, ["functionName", "qualifier", "maximumRetryAttempts", "maximumEventAgeInSeconds", "destinationConfig"]);
      if (args.maximumRetryAttempts !== undefined && !(args.maximumRetryAttempts >= 0 && args.maximumRetryAttempts <= 2)) throw new Error("fake aws: maximumRetryAttempts is 0-2");
      record("FunctionEventInvokeConfig", name, args, this);
    }
  }
  // @pulumi/aws cloudwatch/dashboard.ts and cloudwatch/metricAlarm.ts: their argument names.
  class Dashboard {
    constructor(name: string, args: Args) {
      only(`Dashboard ${name}`, args, ["dashboardName", "dashboardBody"]);
      for (const k of ["dashboardBody", "dashboardName"]) if (!args[k]) throw new Error(`fake aws: Missing required property '${k}' of Dashboard ${name}`);
      record("Dashboard", name, args, this);
    }
  }
  class MetricAlarm {
    arn: string;
    constructor(name: string, args: Args) {
      only(`MetricAlarm ${name}`, args, [
        "actionsEnabled", "alarmActions", "alarmDescription", "name", "comparisonOperator", "datapointsToAlarm", "dimensions", "evaluateLowSampleCountPercentiles",
        "evaluationPeriods", "extendedStatistic", "insufficientDataActions", "metricName", "metricQueries", "namespace", "okActions", "period", "statistic", "tags",
        "threshold", "thresholdMetricId", "treatMissingData", "unit",
      ]);
      for (const q of args.metricQueries ?? []) only(`MetricAlarm ${name} query`, q, ["id", "accountId", "expression", "label", "metricStat", "period", "returnData"]);
      if (args.metricQueries && args.metricName) throw new Error(`fake aws: MetricAlarm ${name} has both metricName and metricQueries`);
      this.arn = `arn:aws:cloudwatch:us-east-1:123456789012:alarm:fake-${name}`;
      record("MetricAlarm", name, args, this);
    }
  }
  g.aws = { lambda: { FunctionEventInvokeConfig }, cloudwatch: { Dashboard, MetricAlarm } };
  g.$config = (c: unknown) => c;
  g.$app = { name: "longdoc", stage: "test" };

  const get = (type: Rec["type"], name: string): Rec => {
    const r = recs.find((x) => x.type === type && x.name === name);
    if (!r) throw new Error(`no ${type} named ${name}; made: ${recs.map((x) => `${x.type} ${x.name}`).join(", ")}`);
    return r;
  };
  return { recs, get, all: (type: Rec["type"]) => recs.filter((r) => r.type === type) };
}

function removeFakeSst() {
  const g = globalThis as any;
  delete g.sst;
  delete g.aws;
  delete g.$config;
  delete g.$app;
}

/** SST's `toSeconds` reads the count with parseInt, so only whole seconds are accepted here. */
function seconds(d: unknown): number {
  const m = /^(\d+) seconds?$/.exec(String(d));
  if (!m) throw new Error(`expected a whole-seconds duration like "900 seconds", got ${JSON.stringify(d)}`);
  return Number(m[1]);
}

function jobsFixture(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "longdoc-infra-"));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

const job = (name: string, extra = "") => `name: ${name}\ndocuments:\n  - s3: s3://${name}-docs/in/\nprompt: Summarise.\nmodel: qwen3-max\n${extra}`;

let fake: ReturnType<typeof installFakeSst>;
const dirs: string[] = [];
const fixture = (files: Record<string, string>) => {
  const d = jobsFixture(files);
  dirs.push(d);
  return d;
};

beforeEach(() => {
  fake = installFakeSst();
});
afterEach(() => {
  removeFakeSst();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe("queue, worker and dead letters", () => {
  const wired = (env: Record<string, string> = {}) => {
    deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }), env });
    const tasks = fake.get("Queue", "Tasks");
    const dlq = fake.get("Queue", "TasksDlq");
    return { tasks, dlq, worker: tasks.self.subscriber, recorder: dlq.self.subscriber };
  };

  it("keeps a task invisible for at least 6 x the worker's timeout", () => {
    const { tasks, worker } = wired();
    expect(worker.fn.handler).toBe(WORKER_HANDLER);
    const timeoutS = seconds(worker.fn.timeout);
    expect(timeoutS).toBe(deployment.workerTimeoutS);
    expect(timeoutS).toBeLessThanOrEqual(900);
    const visibilityS = seconds(tasks.args.visibilityTimeout);
    expect(visibilityS).toBe(deployment.queueVisibilityTimeoutS);
    expect(visibilityS).toBeGreaterThanOrEqual(6 * timeoutS);
  });

  it("moves a task to TasksDlq after deployment.maxReceives deliveries, well above the model attempts (waits in the queue are deliveries too)", () => {
    const { tasks, dlq } = wired();
    expect(tasks.args.dlq).toEqual({ queue: dlq.self.arn, retry: deployment.maxReceives });
    expect(deployment.maxReceives).toBeGreaterThanOrEqual(10 * deployment.maxAttempts);
    expect(dlq.args.transform.queue.messageRetentionSeconds).toBe(deployment.dlqRetentionS);
  });

  it("keeps a waiting task 14 days, the most SQS allows, so a wait for quota never outlives its message", () => {
    const { tasks } = wired();
    expect(tasks.args.transform).toEqual({ queue: { messageRetentionSeconds: deployment.taskRetentionS } });
    expect(deployment.taskRetentionS).toBe(1_209_600);
  });

  it("reports failures per record in batches of deployment.workerBatchSize", () => {
    const { worker } = wired();
    expect(worker.args.batch).toEqual({ size: deployment.workerBatchSize, partialResponses: true });
  });

  it("caps concurrent workers through the event source mapping's scaling config (2-1000)", () => {
    const { worker } = wired();
    const max = worker.args.transform.eventSourceMapping.scalingConfig.maximumConcurrency;
    expect(max).toBe(deployment.maxWorkers);
    expect(max).toBeGreaterThanOrEqual(2);
    expect(max).toBeLessThanOrEqual(1000);
  });

  it("links the worker to the API key and the coordination table; of its queue it may only change visibility; nodejs24.x", () => {
    const { tasks, worker } = wired();
    const link = worker.fn.link as unknown[];
    expect(link).toContain(fake.get("Secret", "DashscopeApiKey").self);
    expect(link).toContain(fake.get("Dynamo", "Coord").self);
    // A bucket link would grant every S3 action on every key: see the prefix-scoped access below.
    expect(link).not.toContain(fake.get("Bucket", "Runs").self);
    expect(worker.fn.environment.LONGDOC_BUCKET).toBe(fake.get("Bucket", "Runs").self.name);
    // A queue link would grant every SQS action: the worker gets the URL and one action instead.
    expect(link).not.toContain(tasks.self);
    expect(worker.fn.environment.LONGDOC_TASKS_URL).toBe(tasks.self.url);
    // The visibility of the tasks it holds, and the delayed copy of a task that waits for quota.
    expect(worker.fn.permissions).toContainEqual({ actions: ["sqs:ChangeMessageVisibility", "sqs:SendMessage"], resources: [tasks.self.arn] });
    expect(worker.fn.runtime).toBe("nodejs24.x");
    // pdf.js needs its CMaps and fonts as files at run time: shipped as a package, not bundled.
    // Code splitting keeps the format readers off the cold start.
    expect(worker.fn.nodejs).toEqual({ install: ["pdfjs-dist", "quickjs-emscripten"], splitting: true });
    expect(worker.fn.memory).toBe(`${deployment.workerMemoryMb} MB`);
  });

  it("passes QWEN_BASE_URL to the worker only when it is set at deploy time", () => {
    expect(wired().worker.fn.environment.QWEN_BASE_URL).toBeUndefined();
    removeFakeSst();
    fake = installFakeSst();
    const url = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
    expect(wired({ QWEN_BASE_URL: url }).worker.fn.environment.QWEN_BASE_URL).toBe(url);
  });

  it("gives the worker the runs bucket by prefix: reads runs/, inputs/ and inbox/, writes runs/ only, lists key names, deletes attempt files only", () => {
    const { worker } = wired();
    const bucket = fake.get("Bucket", "Runs").self.arn;
    // (The s3: sources' buckets are granted apart, as the test below shows.)
    const s3 = (worker.fn.permissions as { actions: string[]; resources: string[] }[]).filter((p) => p.resources.some((r) => String(r).startsWith(bucket)));
    expect(s3).toEqual([
      { actions: ["s3:ListBucket"], resources: [bucket] },
      { actions: ["s3:GetObject"], resources: [`${bucket}/runs/*`, `${bucket}/inputs/*`, `${bucket}/inbox/*`] },
      { actions: ["s3:PutObject", "s3:AbortMultipartUpload"], resources: [`${bucket}/runs/*`] },
      { actions: ["s3:DeleteObject"], resources: [`${bucket}/runs/*/items/*/attempts/*`] },
    ]);
    expect(s3.flatMap((p) => p.actions).some((a) => a === "s3:*" || a === "s3:Delete*" || a === "s3:DeleteObjectVersion")).toBe(false);
  });

  it("lets the worker and the dead-letter recorder delete exactly the attempt files the store's keys name, and nothing else", () => {
    const { worker, recorder } = wired();
    const bucket = fake.get("Bucket", "Runs").self.arn;
    // IAM's '*' matches any characters, '/' included: a key is deletable when its ARN matches a granted pattern.
    const matches = (pattern: string, arn: string) => new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`).test(arn);
    for (const fn of [worker.fn, recorder.fn]) {
      const deletes = (fn.permissions as { actions: string[]; resources: string[] }[]).filter((p) => p.actions.some((a) => a.startsWith("s3:Delete")));
      expect(deletes).toEqual([{ actions: ["s3:DeleteObject"], resources: [`${bucket}/runs/*/items/*/attempts/*`] }]);
      const deletable = (key: string) => deletes.some((p) => p.resources.some((r) => matches(String(r), `${bucket}/${key}`)));
      // What the worker removes: an attempt's open record and its partial traces.
      expect(deletable(keys.attempt("job-1", "001-a", 2).replace(/\.json$/, ".open.json"))).toBe(true);
      expect(deletable(keys.item("job-1", "001-a", "attempts/2.reasoning.md"))).toBe(true);
      // Nothing else of a run: results, answers, the job, the manifest, documents.
      for (const key of [keys.item("job-1", "001-a", "result.json"), keys.item("job-1", "001-a", "answer.md"), keys.job("job-1"), keys.manifest("job-1"), keys.retry("job-1", 1), "inputs/abc/doc.pdf", "inbox/j/doc.pdf"]) {
        expect(deletable(key)).toBe(false);
      }
    }
    // The finalizer deletes its own parts only; submit deletes nothing.
    const finalizer = fake.get("Queue", "Finalize").self.subscriber.fn;
    expect((finalizer.permissions as { actions: string[] }[]).filter((p) => p.actions.some((a) => a.startsWith("s3:Delete")))).toEqual([{ actions: ["s3:DeleteObject"], resources: [`${bucket}/runs/*/finalize/*`] }]);
    expect(JSON.stringify(fake.get("Function", "Submit").args.permissions ?? [])).not.toContain("s3:Delete");
  });

  it("records dead letters with functions/dlq.handler, per record, reading and writing runs/ only", () => {
    const { dlq, recorder } = wired();
    expect(recorder.fn.handler).toBe(DLQ_HANDLER);
    expect(recorder.args.batch.partialResponses).toBe(true);
    expect(recorder.fn.link).toEqual([fake.get("Dynamo", "Coord").self, fake.get("Secret", "WebhookSecret").self]);
    const bucket = fake.get("Bucket", "Runs").self.arn;
    expect(recorder.fn.permissions.filter((p: { actions: string[] }) => p.actions.some((a) => a.startsWith("s3:")))).toEqual([
      { actions: ["s3:ListBucket"], resources: [bucket] },
      { actions: ["s3:GetObject"], resources: [`${bucket}/runs/*`] },
      { actions: ["s3:PutObject", "s3:AbortMultipartUpload"], resources: [`${bucket}/runs/*`] },
      { actions: ["s3:DeleteObject"], resources: [`${bucket}/runs/*/items/*/attempts/*`] },
    ]);
    expect(recorder.fn.runtime).toBe("nodejs24.x");
    expect(seconds(dlq.args.visibilityTimeout)).toBeGreaterThanOrEqual(6 * seconds(recorder.fn.timeout));
    expect(dlq.args.dlq).toBeUndefined();
  });
});

describe("job-finished events", () => {
  const wired = () => {
    const outputs = deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }) });
    const topic = fake.get("SnsTopic", "JobEvents");
    const secret = fake.get("Secret", "WebhookSecret");
    return { outputs, topic, secret, worker: fake.get("Queue", "Tasks").self.subscriber.fn, recorder: fake.get("Queue", "TasksDlq").self.subscriber.fn };
  };

  it("makes one SNS topic, JobEvents, and names it in the outputs", () => {
    const { outputs, topic } = wired();
    expect(fake.all("SnsTopic").map((t) => t.name)).toEqual(["JobEvents", "Alarms"]);
    expect(topic.args).toEqual({});
    expect(outputs.jobEventsTopic).toBe(topic.self.arn);
  });

  it("lets the worker, the dead-letter recorder and the finalizer publish to that topic only, with the topic's ARN in their environment", () => {
    const { topic, worker, recorder } = wired();
    for (const fn of [worker, recorder, fake.get("Queue", "Finalize").self.subscriber.fn]) {
      expect(fn.environment.LONGDOC_EVENTS_TOPIC).toBe(topic.self.arn);
      const sns = (fn.permissions as { actions: string[]; resources: unknown[] }[]).filter((p) => p.actions.some((a) => a.startsWith("sns:")));
      expect(sns).toEqual([{ actions: ["sns:Publish"], resources: [topic.self.arn] }]);
      // A link to the topic would grant every SNS action.
      expect(fn.link).not.toContain(topic.self);
    }
  });

  it("links the webhook secret to the worker, the recorder and the finalizer (which sends the event), and to nothing else", () => {
    const { secret } = wired();
    const holders = fake.recs.filter((r) => r.type === "Function" || r.type === "Queue").flatMap((r) => {
      const fns = r.type === "Queue" ? (r.self.subscriber ? [r.self.subscriber.fn] : []) : [r.args];
      return fns.filter((f: Args) => (f.link ?? []).includes(secret.self)).map((f: Args) => f.handler);
    });
    expect(holders.sort()).toEqual([DLQ_HANDLER, FINALIZE_HANDLER, WORKER_HANDLER].sort());
    expect(fake.get("Function", "Submit").args.permissions.some((p: { actions: string[] }) => p.actions.some((a) => a.startsWith("sns:")))).toBe(false);
  });
});

describe("submit's failed asynchronous invocations", () => {
  it("go to the SubmitFailures queue after Lambda's 2 retries, kept as long as the dead letters; submit may send to it and nothing else may", () => {
    deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }) });
    const failures = fake.get("Queue", "SubmitFailures");
    const submit = fake.get("Function", "Submit");
    expect(failures.args).toEqual({ transform: { queue: { messageRetentionSeconds: deployment.dlqRetentionS } } });
    expect(failures.self.subscriber).toBeUndefined();
    expect(fake.get("FunctionEventInvokeConfig", "SubmitAsyncInvoke").args).toEqual({
      functionName: submit.self.name,
      maximumRetryAttempts: 2,
      destinationConfig: { onFailure: { destination: failures.self.arn } },
    });
    expect(submit.args.permissions).toContainEqual({ actions: ["sqs:SendMessage"], resources: [failures.self.arn] });
    const others = [fake.get("Queue", "Tasks").self.subscriber.fn, fake.get("Queue", "TasksDlq").self.subscriber.fn];
    for (const fn of others) expect(JSON.stringify(fn.permissions ?? [])).not.toContain(failures.self.arn);
  });
});

describe("settings checks", () => {
  it("accepts the settings in shared/settings.ts", () => {
    expect(() => checkQueueSettings(deployment)).not.toThrow();
  });

  it.each([
    [{ maxWorkers: 1 }, /maxWorkers is 1; the SQS scaling config takes 2-1000/],
    [{ maxWorkers: 1001 }, /maxWorkers is 1001/],
    [{ queueVisibilityTimeoutS: 900 * 5 }, /below 6 x workerTimeoutS \(5400\)/],
    [{ workerTimeoutS: 901 }, /workerTimeoutS is 901; Lambda allows 1-900/],
    [{ workerBatchSize: 11 }, /workerBatchSize is 11/],
    [{ maxReceives: 0 }, /maxReceives is 0/],
  ])("refuses %j before creating anything", (change, message) => {
    expect(() => checkQueueSettings({ ...deployment, ...change })).toThrow(message);
    expect(fake.recs).toHaveLength(0);
  });
});

describe("submit, schedules and uploads", () => {
  const files = {
    "nightly.yaml": job("nightly", "schedule: cron(0 6 ? * MON *)\n"),
    "weekly-digest.yaml": job("weekly-digest", "schedule: rate(7 days)\n"),
    "uploads.yaml": job("uploads", "trigger: upload\n"),
    "plain.yaml": job("plain"),
    "notes.md": "not a job",
    "examples/nested.yaml": job("nested", "schedule: cron(0 1 * * ? *)\ntrigger: upload\n"),
  };

  it("bundles the job files with one submit function linked to the bucket, the queue and the coordination table", () => {
    deploy({ jobsDir: fixture(files) });
    const submit = fake.get("Function", "Submit");
    expect(fake.all("Function")).toHaveLength(1);
    expect(submit.args.handler).toBe(SUBMIT_HANDLER);
    expect(submit.args.copyFiles).toEqual([{ from: "jobs", to: "jobs" }]);
    expect(submit.args.nodejs).toEqual({ install: ["pdfjs-dist", "quickjs-emscripten"] });
    expect(submit.args.link).toEqual([fake.get("Bucket", "Runs").self, fake.get("Queue", "Tasks").self, fake.get("Dynamo", "Coord").self]);
    expect(submit.args.runtime).toBe("nodejs24.x");
    expect(seconds(submit.args.timeout)).toBe(deployment.submitTimeoutS);
  });

  it("schedules each top-level job with a schedule: once, with its expression and a {job, scheduledTime} event (the same tick gives the same job)", () => {
    const out = deploy({ jobsDir: fixture(files) });
    const submit = fake.get("Function", "Submit").self;
    const crons = fake.all("CronV2").filter((c) => c.name !== "BatchPoll");
    expect(crons.map((c) => c.name)).toEqual(["ScheduleNightly", "ScheduleWeeklyDigest"]);
    // Retries and a dead-letter queue: see test/ops-deploy.test.ts.
    const retry = { retries: expect.any(Number), dlq: fake.get("Queue", "ScheduleDlq").self.arn };
    expect(crons.map((c) => c.args)).toEqual([
      { function: submit, schedule: "cron(0 6 ? * MON *)", event: { job: "nightly", scheduledTime: "<aws.scheduler.scheduled-time>" }, ...retry },
      { function: submit, schedule: "rate(7 days)", event: { job: "weekly-digest", scheduledTime: "<aws.scheduler.scheduled-time>" }, ...retry },
    ]);
    expect(out.schedules.map((s) => s.job)).toEqual(["nightly", "weekly-digest"]);
  });

  it("wires inbox/<job>/ uploads to submit for each trigger: upload job", () => {
    const out = deploy({ jobsDir: fixture(files) });
    const notes = fake.get("Bucket", "Runs").self.notifications;
    expect(notes.notifications).toEqual([
      {
        name: "InboxUploads",
        function: fake.get("Function", "Submit").self.arn,
        events: ["s3:ObjectCreated:*"],
        filterPrefix: "inbox/uploads/",
      },
    ]);
    expect(notes.notifications[0].filterPrefix.startsWith("inbox/")).toBe(true);
    expect(out.uploads).toEqual([{ job: "uploads", prefix: "inbox/uploads/" }]);
  });

  it("wires no notification and no schedule when no job asks for one", () => {
    const out = deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }) });
    expect(fake.get("Bucket", "Runs").self.notifications).toBeUndefined();
    // Only the batch poller's, which every stack has.
    expect(fake.all("CronV2").map((c) => c.name)).toEqual(["BatchPoll"]);
    expect(out).toMatchObject({ schedules: [], uploads: [] });
  });

  it("lets submit and the worker read the buckets that s3: documents name", () => {
    deploy({ jobsDir: fixture(files) });
    const expected = [
      {
        actions: ["s3:GetObject", "s3:ListBucket"],
        resources: ["nightly", "plain", "uploads", "weekly-digest"].flatMap((j) => [`arn:aws:s3:::${j}-docs`, `arn:aws:s3:::${j}-docs/*`]),
      },
    ];
    expect(fake.get("Function", "Submit").args.permissions).toEqual([...expected, { actions: ["sqs:SendMessage"], resources: [fake.get("Queue", "SubmitFailures").self.arn] }]);
    const runs = fake.get("Bucket", "Runs").self.arn;
    expect(fake.get("Queue", "Tasks").self.subscriber.fn.permissions).toEqual([
      ...expected,
      { actions: ["s3:ListBucket"], resources: [runs] },
      { actions: ["s3:GetObject"], resources: [`${runs}/runs/*`, `${runs}/inputs/*`, `${runs}/inbox/*`] },
      { actions: ["s3:PutObject", "s3:AbortMultipartUpload"], resources: [`${runs}/runs/*`] },
      { actions: ["s3:DeleteObject"], resources: [`${runs}/runs/*/items/*/attempts/*`] },
      { actions: ["sqs:ChangeMessageVisibility", "sqs:SendMessage"], resources: [fake.get("Queue", "Tasks").self.arn] },
      { actions: ["sns:Publish"], resources: [fake.get("SnsTopic", "JobEvents").self.arn] },
      { actions: ["sqs:SendMessage"], resources: [fake.get("Queue", "Finalize").self.arn] },
    ]);
  });

  it("refuses a scheduled job whose name: differs from its file name", () => {
    const dir = fixture({ "nightly.yaml": job("nightly-run", "schedule: rate(1 day)\n") });
    expect(() => deploy({ jobsDir: dir })).toThrow(/nightly\.yaml: name 'nightly-run' differs from the file name/);
  });

  it("names the file when a job file is not YAML", () => {
    const dir = fixture({ "broken.yaml": "name: [unclosed\n" });
    expect(() => readJobs(dir)).toThrow(/broken\.yaml: not valid YAML/);
  });

  it("reads only top-level job files of the repo's jobs/, not jobs/examples/", () => {
    const names = readJobs(path.join(ROOT, "jobs")).map((j) => j.name);
    expect(names).not.toContain("annual-reports");
  });
});

describe("the batch poller", () => {
  it("runs every few minutes with the API key and the table, reads runs and open-job markers, writes only under runs/, and queues tasks", () => {
    const out = deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }), env: { QWEN_BASE_URL: "https://dashscope.aliyuncs.com/compatible-mode/v1" } });
    const cron = fake.get("CronV2", "BatchPoll");
    const fn = cron.args.function;
    const runs = fake.get("Bucket", "Runs").self;
    const tasks = fake.get("Queue", "Tasks").self;
    expect(cron.args.schedule).toBe(BATCH_POLL_SCHEDULE);
    expect(BATCH_POLL_SCHEDULE).toMatch(/^rate\(\d+ minutes\)$/);
    expect(out.batchPollSchedule).toBe(BATCH_POLL_SCHEDULE);
    expect(fn.handler).toBe(BATCH_POLL_HANDLER);
    expect(fn.runtime).toBe("nodejs24.x");
    // Well within the five minutes between runs, so two passes do not overlap for long.
    expect(seconds(fn.timeout)).toBeLessThan(300);
    expect(fn.link).toEqual([fake.get("Secret", "DashscopeApiKey").self, fake.get("Dynamo", "Coord").self]);
    // Not linked to the bucket or the queue (a link grants every action): only what it uses.
    expect(fn.permissions).toEqual([
      { actions: ["s3:ListBucket"], resources: [runs.arn] },
      { actions: ["s3:GetObject"], resources: [`${runs.arn}/runs/*`, `${runs.arn}/batches-open/*`] },
      { actions: ["s3:PutObject"], resources: [`${runs.arn}/runs/*`] },
      { actions: ["s3:DeleteObject"], resources: [`${runs.arn}/batches-open/*`] },
      { actions: ["sqs:SendMessage"], resources: [tasks.arn] },
    ]);
    expect(fn.environment).toEqual({ QWEN_BASE_URL: "https://dashscope.aliyuncs.com/compatible-mode/v1", LONGDOC_TASKS_URL: tasks.url, LONGDOC_BUCKET: runs.name });
  });
});

describe("handlers the infra points at", () => {
  it("wires exactly the worker, dlq and submit handlers", () => {
    deploy({ jobsDir: fixture({ "u.yaml": job("u", "trigger: upload\nschedule: rate(1 day)\n") }) });
    const handlers = [
      // ScheduleDlq has no subscriber: it keeps the runs Scheduler could not deliver.
      ...fake.all("Queue").flatMap((q) => (q.self.subscriber ? [q.self.subscriber.fn.handler] : [])),
      ...fake.all("Function").map((f) => f.args.handler),
      ...fake.all("CronV2").flatMap((c) => (c.args.function.handler ? [c.args.function.handler] : [])),
    ];
    expect(handlers.sort()).toEqual([DLQ_HANDLER, FINALIZE_HANDLER, SUBMIT_HANDLER, WORKER_HANDLER, BATCH_POLL_HANDLER].sort());
  });

  it.for([WORKER_HANDLER, DLQ_HANDLER, SUBMIT_HANDLER, FINALIZE_HANDLER, BATCH_POLL_HANDLER])("%s is a file in functions/ that exports handler", (handler, ctx) => {
    const [file, exported] = [handler.slice(0, handler.lastIndexOf(".")), handler.slice(handler.lastIndexOf(".") + 1)];
    expect(exported).toBe("handler");
    const ts = path.join(ROOT, `${file}.ts`);
    if (!existsSync(ts)) ctx.skip(`${file}.ts is not written yet (another engineer owns functions/); re-run once it exists`);
    expect(readFileSync(ts, "utf8")).toMatch(/export\s+(const|(async\s+)?function)\s+handler\b|export\s*\{[^}]*\bhandler\b/);
  });
});

describe("sst.config.ts", () => {
  const load = async () => (await import("../sst.config.ts")).default as { app(i: { stage: string }): any; run(): Promise<any> };

  it("names the app longdoc on AWS, retained and protected on prod only", async () => {
    const config = await load();
    expect(config.app({ stage: "prod" })).toEqual({ name: "longdoc", home: "aws", removal: "retain", protect: true });
    expect(config.app({ stage: "dev" })).toEqual({ name: "longdoc", home: "aws", removal: "remove", protect: false });
  });

  it("builds the infra from run() and returns the names a client needs", async () => {
    const config = await load();
    const out = await config.run();
    expect(fake.recs.filter((r) => r.type !== "CronV2").map((r) => `${r.type} ${r.name}`)).toEqual([
      "Bucket Runs",
      "Secret DashscopeApiKey",
      "Dynamo Coord",
      "SnsTopic JobEvents",
      "Secret WebhookSecret",
      "Queue FinalizeDlq",
      "Queue Finalize",
      "Queue TasksDlq",
      "Queue Tasks",
      "Queue SubmitFailures",
      "Function Submit",
      "FunctionEventInvokeConfig SubmitAsyncInvoke",
      "SnsTopic Alarms",
      "MetricAlarm DeadLettersAlarm",
      "MetricAlarm FinalizeDeadLettersAlarm",
      "MetricAlarm RateLimitedAlarm",
      "MetricAlarm JobSpendAlarm",
      "Dashboard Dashboard",
    ]);
    expect(out).toMatchObject({
      stage: "test",
      bucket: fake.get("Bucket", "Runs").self.name,
      queue: fake.get("Queue", "Tasks").self.url,
      deadLetterQueue: fake.get("Queue", "TasksDlq").self.url,
      coordinationTable: fake.get("Dynamo", "Coord").self.name,
      submitFunction: fake.get("Function", "Submit").self.name,
      jobEventsTopic: fake.get("SnsTopic", "JobEvents").self.arn,
      submitFailures: fake.get("Queue", "SubmitFailures").self.url,
    });
  });
});

describe("monitoring: alarms to a topic, and a dashboard of the worker's metrics", () => {
  const wired = () => {
    const outputs = deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }) });
    return { outputs, topic: fake.get("SnsTopic", "Alarms"), dlq: fake.get("Queue", "TasksDlq") };
  };

  it("makes an Alarms topic apart from job events, names it in the outputs, and sends every alarm and its recovery there", () => {
    const { outputs, topic } = wired();
    expect(topic.args).toEqual({});
    expect(outputs.alarmsTopic).toBe(topic.self.arn);
    const alarms = fake.all("MetricAlarm");
    expect(alarms.map((a) => a.name)).toEqual(["DeadLettersAlarm", "FinalizeDeadLettersAlarm", "RateLimitedAlarm", "JobSpendAlarm"]);
    for (const a of alarms) {
      expect(a.args.alarmActions).toEqual([topic.self.arn]);
      expect(a.args.okActions).toEqual([topic.self.arn]);
      expect(a.args.treatMissingData).toBe("notBreaching");
      expect(a.args.comparisonOperator).toBe("GreaterThanThreshold");
    }
  });

  it("alarms when any task sits in the dead-letter queue, named by the queue's ARN", () => {
    const { dlq } = wired();
    const a = fake.get("MetricAlarm", "DeadLettersAlarm").args;
    expect(a).toMatchObject({ namespace: "AWS/SQS", metricName: "ApproximateNumberOfMessagesVisible", statistic: "Maximum", threshold: 0, evaluationPeriods: 1 });
    expect(a.dimensions).toEqual({ QueueName: dlq.self.arn.split(":").pop() });
    expect(a.dimensions.QueueName).toBe("fake-TasksDlq");
    // The finalizer's dead letters too: a job whose end was never written.
    expect(fake.get("MetricAlarm", "FinalizeDeadLettersAlarm").args).toMatchObject({ metricName: "ApproximateNumberOfMessagesVisible", dimensions: { QueueName: "fake-FinalizeDlq" }, threshold: 0 });
  });

  it("alarms on the share of 429s among the worker's model calls, from the metrics it prints", () => {
    wired();
    const a = fake.get("MetricAlarm", "RateLimitedAlarm").args;
    expect(a.threshold).toBe(ALARM_THRESHOLDS.rateLimitedShare);
    const byId = Object.fromEntries(a.metricQueries.map((q: Args) => [q.id, q]));
    expect(byId.calls.metricStat.metric).toEqual({ namespace: METRICS_NAMESPACE, metricName: METRIC.modelCalls, dimensions: { Service: SERVICE } });
    expect(byId.limited.metricStat.metric).toEqual({ namespace: METRICS_NAMESPACE, metricName: METRIC.rateLimited, dimensions: { Service: SERVICE } });
    expect(byId.share).toMatchObject({ expression: "IF(calls > 0, limited / calls, 0)", returnData: true });
    // Exactly one query is the alarm's value.
    expect(a.metricQueries.filter((q: Args) => q.returnData)).toHaveLength(1);
  });

  it("alarms on the costliest job's spend per five minutes, over the per-job metric the worker prints", () => {
    wired();
    const a = fake.get("MetricAlarm", "JobSpendAlarm").args;
    expect(a.threshold).toBe(ALARM_THRESHOLDS.jobSpendPer5Minutes);
    expect(a.metricQueries).toHaveLength(1);
    expect(a.metricQueries[0]).toMatchObject({ period: 300, returnData: true });
    expect(a.metricQueries[0].expression).toBe(`SELECT SUM(Spend) FROM SCHEMA("longdoc", JobId, Service) GROUP BY JobId ORDER BY SUM() DESC LIMIT 1`);
  });

  it("draws a dashboard of every metric the worker prints, and the dead-letter queue, in the stack's region", () => {
    wired();
    // <app>-<stage> from SST's $app, which the stand-in sets to longdoc/test.
    expect(fake.get("Dashboard", "Dashboard").args.dashboardName).toBe("longdoc-test");
    const body = JSON.parse(fake.get("Dashboard", "Dashboard").args.dashboardBody) as { widgets: { type: string; properties: { region: string; metrics: unknown[][] } }[] };
    expect(body.widgets.length).toBe(6);
    for (const w of body.widgets) expect(w).toMatchObject({ type: "metric", properties: { region: "us-east-1" } });
    const named = body.widgets.flatMap((w) => w.properties.metrics.filter((m) => typeof m[0] === "string").map((m) => `${m[0]}/${m[1]}`));
    for (const name of Object.values(METRIC)) expect(named).toContain(`${METRICS_NAMESPACE}/${name}`);
    expect(named).toContain("AWS/SQS/ApproximateNumberOfMessagesVisible");
    expect(JSON.stringify(body)).toContain('"QueueName","fake-TasksDlq"');
  });
});

describe("the finalizer", () => {
  it("has its own queue and invocation: Finalize → functions/finalize.handler (15 minutes, one job per invocation), FinalizeDlq after finalizeMaxReceives", () => {
    const out = deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }) });
    const finalize = fake.get("Queue", "Finalize");
    const dlq = fake.get("Queue", "FinalizeDlq");
    const fn = finalize.self.subscriber.fn;
    expect(fn.handler).toBe(FINALIZE_HANDLER);
    expect(seconds(fn.timeout)).toBe(deployment.finalizeTimeoutS);
    expect(deployment.finalizeTimeoutS).toBe(900);
    expect(finalize.self.subscriber.args.batch).toEqual({ size: 1, partialResponses: true });
    expect(finalize.args.dlq).toEqual({ queue: dlq.self.arn, retry: deployment.finalizeMaxReceives });
    expect(seconds(finalize.args.visibilityTimeout)).toBeGreaterThanOrEqual(6 * seconds(fn.timeout));
    expect(dlq.args).toEqual({ transform: { queue: { messageRetentionSeconds: deployment.dlqRetentionS } } });
    expect(dlq.self.subscriber).toBeUndefined();
    expect(fn.environment.LONGDOC_FINALIZE_URL).toBe(finalize.self.url);
    expect(fn.permissions).toContainEqual({ actions: ["sqs:ChangeMessageVisibility"], resources: [finalize.self.arn] });
    expect(out).toMatchObject({ finalizeQueue: finalize.self.url, finalizeDeadLetters: dlq.self.url });
  });

  it("is asked for by the worker and the dead-letter recorder alone: each may send to the finalize queue and has its URL", () => {
    deploy({ jobsDir: fixture({ "plain.yaml": job("plain") }) });
    const finalize = fake.get("Queue", "Finalize").self;
    for (const fn of [fake.get("Queue", "Tasks").self.subscriber.fn, fake.get("Queue", "TasksDlq").self.subscriber.fn]) {
      expect(fn.environment.LONGDOC_FINALIZE_URL).toBe(finalize.url);
      expect(fn.permissions).toContainEqual({ actions: ["sqs:SendMessage"], resources: [finalize.arn] });
    }
    expect(JSON.stringify(fake.get("Function", "Submit").args.permissions)).not.toContain(finalize.arn);
  });
});
