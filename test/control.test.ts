import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { DeleteMessageCommand, PurgeQueueCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTaskMessage } from "../shared/run/queue.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { retryJob, type RetryRecord } from "../shared/run/control.ts";
import { loadCatalog } from "../shared/model/catalog.ts";
import { inputKey, loadJobForSubmit, submitLoadedJob } from "../shared/submit/load.ts";
import { readStackCoordinates, regionOfQueueUrl } from "../cli/stack.ts";
import type { JobRecord } from "../shared/job/record.ts";
import { queueDepth } from "../shared/local/inspect.ts";
import { cancelLocalJob, runLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import { createModelClient } from "../shared/model/client.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { deployment, loadSettings } from "../shared/settings.ts";
import { createCoordinator } from "../shared/run/coord.ts";

const BIN = path.resolve("bin/longdoc.ts");

const cli = async (args: string[], env: Record<string, string | undefined> = {}, cwd?: string) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, cwd, timeout: 90_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trimEnd().split("\n").pop()!) as T;

async function makeJob(dir: string, name: string, docs: Record<string, string>, extra = "") {
  await mkdir(path.join(dir, "docs"), { recursive: true });
  for (const [file, text] of Object.entries(docs)) await writeFile(path.join(dir, "docs", file), text);
  const jobFile = path.join(dir, `${name}.yaml`);
  await writeFile(jobFile, `name: ${name}\ndocuments:\n  - path: docs/*\nprompt: What changed?\nmaxOutputTokens: 256\n${extra}`);
  return jobFile;
}

/** Submits a job to a persisted state without running any worker: its tasks wait in the queue. */
async function submitOnly(state: string, jobFile: string): Promise<JobRecord> {
  const stack = await startLocalStack({ dataDir: state });
  try {
    return await submitLoadedJob(
      { s3: stack.s3, sqs: stack.sqs, bucket: stack.bucket, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives },
      await loadJobForSubmit(jobFile, loadCatalog()),
    );
  } finally {
    await stack.stop();
  }
}

const sourcesCalled = (sim: Simulator, from: number) => sim.calls.slice(from).flatMap((c) => c.documents.map((d) => d.source)).sort();

describe("retry and cancel on persisted local runs, through the CLI", () => {
  let sim: Simulator;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-control-"));
    env = { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL };
  });
  afterAll(async () => {
    await sim?.stop();
  });

  it("retry turns a halted run into a succeeded one, calling the model only for the failed and skipped items", async () => {
    const state = path.join(dir, "halt-state");
    const out = path.join(dir, "halt-out");
    const jobFile = await makeJob(path.join(dir, "halt"), "halt-retry", { "a.md": "# A\n\nCash rose.\n", "b.md": "# B\n\nDebt fell.\n", "c.md": "# C\n\nA buyback.\n" });
    // The first call succeeds; then the key is refused, which halts the job.
    const real = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL });
    let calls = 0;
    const model = { chat: async (...a: Parameters<typeof real.chat>) => {
      const r = await real.chat(...a);
      if (++calls === 1) sim.injectFaults({ kind: "401", count: 1 });
      return r;
    } };
    const run = await runLocalJob({ jobFile, outDir: out, workers: 1, settings: loadSettings(env), log: silentLog, dataDir: state, model });
    const m0 = run.manifest;
    const jobId = run.job.jobId;
    expect(m0.status).toBe("halted");
    expect(m0.items.map((i) => i.status)).toEqual(["succeeded", "failed", "skipped"]);
    expect(m0.items[1]!.error!.kind).toBe("model_auth");
    expect(m0.items[2]!.error!.kind).toBe("halted");
    const succeededBefore = await readFile(path.join(out, jobId, "items", m0.items[0]!.id, "result.json"), "utf8");
    const failedBefore = await readFile(path.join(out, jobId, "items", m0.items[1]!.id, "result.json"), "utf8");

    const before = sim.calls.length;
    const r = await cli(["retry", jobId, "--state", state, "--out", out, "--workers", "1", "--json"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`job ${jobId}: retry 1: re-queued 2 item(s)`);
    expect(r.stderr).toContain(`${m0.items[1]!.id}: was failed after 1 attempt(s) (model_auth)`);
    expect(r.stderr).toMatch(/removed the halt marker \(the job had been halted: the API key was refused/);
    expect(r.stderr).toMatch(/3 succeeded, 0 failed, 0 skipped of 3/);
    const summary = lastJson<Manifest>(r.stdout);
    expect(summary).toMatchObject({ jobId, status: "succeeded", counts: { total: 3, succeeded: 3, failed: 0, skipped: 0 } });
    // Only the two retried documents reached the model.
    expect(sourcesCalled(sim, before)).toEqual([m0.items[1]!.documents[0], m0.items[2]!.documents[0]].sort());

    const m1 = JSON.parse(await readFile(path.join(out, jobId, "manifest.json"), "utf8")) as Manifest;
    expect(m1.status).toBe("succeeded");
    expect(m1.items.every((i) => i.status === "succeeded" && i.attempts === 1 && i.error === null)).toBe(true);
    // The item that had succeeded kept its result byte for byte; the others' earlier results were moved aside.
    expect(await readFile(path.join(out, jobId, "items", m0.items[0]!.id, "result.json"), "utf8")).toBe(succeededBefore);
    expect(await readFile(path.join(out, jobId, "items", m0.items[1]!.id, "previous", "1", "result.json"), "utf8")).toBe(failedBefore);
    const prev2 = JSON.parse(await readFile(path.join(out, jobId, "items", m0.items[2]!.id, "previous", "1", "result.json"), "utf8")) as ItemResult;
    expect(prev2).toMatchObject({ status: "skipped", error: { kind: "halted" } });
    const record = JSON.parse(await readFile(path.join(out, jobId, "retries", "1.json"), "utf8")) as RetryRecord;
    expect(record).toMatchObject({ round: 1, jobId, removed: { halt: { kind: "model_auth" } } });
    expect(record.items.map((i) => [i.id, i.status, i.attempts])).toEqual([[m0.items[1]!.id, "failed", 1], [m0.items[2]!.id, "skipped", 1]]);
    // The halt marker left the run and its mirror.
    expect((await readdir(path.join(out, jobId))).includes("halt.json")).toBe(false);

    const again = await cli(["retry", jobId, "--state", state, "--out", out], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`nothing to retry: all 3 item(s) of job ${jobId} succeeded\n`);
    expect(sim.calls.length - before).toBe(2);
    const status = await cli(["status", jobId, "--state", state, "--json"]);
    expect(status.code).toBe(0);
    expect(lastJson<{ status: string; counts: { retrying: number } }>(status.stdout)).toMatchObject({ status: "succeeded", counts: { retrying: 0 } });
  }, 120_000);

  it("retry of a partial run: the item the model refused succeeds, an empty document fails again without a call; each round is recorded", async () => {
    const state = path.join(dir, "partial-state");
    const out = path.join(dir, "partial-out");
    const jobFile = await makeJob(path.join(dir, "partial"), "partial-retry", { "a.md": "# A\n\nCash rose.\n", "b.md": "# B\n\nDebt fell.\n", "c.md": "" });
    sim.injectFaults({ kind: "moderation", count: 1 });
    const run = await runLocalJob({ jobFile, outDir: out, workers: 1, settings: loadSettings(env), log: silentLog, dataDir: state });
    const jobId = run.job.jobId;
    expect(run.manifest.status).toBe("partial");
    const kinds = Object.fromEntries(run.manifest.items.filter((i) => i.error).map((i) => [i.documents[0], i.error!.kind]));
    const refused = Object.keys(kinds).find((k) => kinds[k] === "moderation")!;
    expect(kinds).toEqual({ [refused]: "moderation", [run.manifest.items[2]!.documents[0]!]: "document_empty" });
    const emptyId = run.manifest.items[2]!.id;

    const before = sim.calls.length;
    const r = await cli(["retry", jobId, "--state", state, "--out", out, "--json"], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("re-queued 2 item(s)");
    expect(r.stderr).not.toContain("marker");
    expect(lastJson<Manifest>(r.stdout)).toMatchObject({ status: "partial", counts: { succeeded: 2, failed: 1 } });
    expect(sourcesCalled(sim, before)).toEqual([refused]);

    const r2 = await cli(["retry", jobId, "--state", state, "--out", out, "--json"], env);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toContain(`retry 2: re-queued 1 item(s)`);
    expect(r2.stderr).toContain(`${emptyId}: was failed after 1 attempt(s) (document_empty)`);
    expect(sim.calls.length - before).toBe(1);
    const item = path.join(out, jobId, "items", emptyId);
    expect((await readdir(path.join(item, "previous"))).sort()).toEqual(["1", "2"]);
    expect(JSON.parse(await readFile(path.join(item, "result.json"), "utf8"))).toMatchObject({ status: "failed", attempts: 1, error: { kind: "document_empty" } });
    expect((await readdir(path.join(out, jobId, "retries"))).sort()).toEqual(["1.json", "2.json"]);
  }, 120_000);

  it("cancel on a job whose tasks are queued: every item ends skipped (cancelled) without a model call; again says it is finished; retry brings it back", async () => {
    const state = path.join(dir, "cancel-state");
    const out = path.join(dir, "cancel-out");
    const jobFile = await makeJob(path.join(dir, "cancel"), "cancel-me", Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`n${i}.md`, `# Note ${i}\n\nValue ${i}.\n`])));
    const job = await submitOnly(state, jobFile);
    const before = sim.calls.length;

    const r = await cli(["cancel", job.jobId, "--state", state, "--out", out, "--json"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`job ${job.jobId}: cancel marker written; 5 of 5 item(s) had not finished`);
    expect(r.stderr).toContain(`cancelled job ${job.jobId}: 5 item(s) skipped without calling the model\n`);
    expect(lastJson<Manifest>(r.stdout)).toMatchObject({ status: "cancelled", counts: { total: 5, succeeded: 0, failed: 0, skipped: 5 } });
    const m = JSON.parse(await readFile(path.join(out, job.jobId, "manifest.json"), "utf8")) as Manifest;
    expect(m.items.every((i) => i.status === "skipped" && i.error?.kind === "cancelled" && i.attempts === 0)).toBe(true);
    expect(sim.calls.length).toBe(before);

    const again = await cli(["cancel", job.jobId, "--state", state]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`job ${job.jobId} already finished (cancelled: 0 succeeded, 0 failed, 5 skipped of 5); nothing changed\n`);

    const retried = await cli(["retry", job.jobId, "--state", state, "--out", out, "--json"], env);
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stderr).toContain("removed the cancel marker");
    expect(lastJson<Manifest>(retried.stdout)).toMatchObject({ status: "succeeded", counts: { succeeded: 5 } });
    expect(sim.calls.length - before).toBe(5);
  }, 120_000);

  it("unknown job ids, a missing state and a running job are input errors", async () => {
    const state = path.join(dir, "cancel-state");
    for (const cmd of ["retry", "cancel"]) {
      const r = await cli([cmd, "nope-20200101-000000-abcd", "--state", state]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`no job 'nope-20200101-000000-abcd' in the local state '${state}'; most recent: cancel-me-`);
      const none = await cli([cmd, "x", "--state", path.join(dir, "no-state")]);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain("no local runs in");
    }
    expect((await readdir(dir)).includes("no-state")).toBe(false);
    expect((await cli(["retry"])).code).toBe(2);
    expect((await cli(["cancel", "x", "--workers", "0"])).code).toBe(2);
  }, 60_000);
});

describe("retry and cancel in process", () => {
  let stack: LocalStack;
  let dir: string;

  beforeAll(async () => {
    stack = await startLocalStack({ visibilityTimeoutS: 1 });
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-control-mem-"));
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const submit = async (name: string, n: number) => {
    const jobFile = await makeJob(path.join(dir, name), name, Object.fromEntries(Array.from({ length: n }, (_, i) => [`d${i}.md`, `# D${i}\n`])));
    return submitLoadedJob({ s3: stack.s3, sqs: stack.sqs, bucket: stack.bucket, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives }, await loadJobForSubmit(jobFile, loadCatalog()));
  };

  it("retry refuses a run that is still going", async () => {
    const job = await submit("still-running", 2);
    const store = new ObjectStore(stack.s3, stack.bucket);
    await expect(retryJob({ store, sqs: stack.sqs, queueUrl: stack.queueUrl, coord: createCoordinator(stack.dynamo.client, stack.dynamo.table) }, job.jobId)).rejects.toThrow(/is still running: 2 of 2 item\(s\) have no result yet/);
    await stack.sqs.send(new PurgeQueueCommand({ QueueUrl: stack.queueUrl }));
  });

  it("cancel finishes a job whose tasks were lost: once both queues are empty, the items without a result are recorded skipped", async () => {
    const job = await submit("lost-tasks", 3);
    // All three tasks are lost (as with a run interrupted between receiving and finishing them).
    for (let left = 3; left > 0; ) {
      const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
      for (const msg of got.Messages ?? []) {
        expect(parseTaskMessage(msg.Body!).jobId).toBe(job.jobId);
        await stack.sqs.send(new DeleteMessageCommand({ QueueUrl: stack.queueUrl, ReceiptHandle: msg.ReceiptHandle! }));
        left--;
      }
    }
    const started = Date.now();
    const out = await cancelLocalJob({ jobId: job.jobId, stack, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings({}), log: silentLog, timeoutMs: 20_000 });
    expect(out.state).toBe("cancelled");
    if (out.state !== "cancelled") return;
    expect(out.skipped).toEqual(job.items.map((i) => i.id));
    expect(out.manifest).toMatchObject({ status: "cancelled", counts: { total: 3, skipped: 3 } });
    expect(out.manifest.items.every((i) => i.error?.kind === "cancelled" && i.attempts === 0)).toBe(true);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await queueDepth(stack)).toBe(0);
  }, 30_000);
});

describe("submit to a deployed stack (fauxqs standing in for AWS)", () => {
  let aws: LocalStack;
  let dir: string;
  let awsEnv: Record<string, string | undefined>;

  beforeAll(async () => {
    aws = await startLocalStack();
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-submit-"));
    awsEnv = {
      LONGDOC_BUCKET: aws.bucket,
      LONGDOC_QUEUE_URL: aws.queueUrl,
      LONGDOC_TABLE: aws.dynamo.table,
      AWS_ENDPOINT_URL_DYNAMODB: aws.dynamo.endpoint,
      // A host name, not an IP: the SDK then addresses buckets virtual-host style (longdoc-runs.localhost)
      // unless path style is turned on, which the SDK has no environment variable for; deployed.ts does it.
      AWS_ENDPOINT_URL: aws.endpoint.replace("127.0.0.1", "localhost"),
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      AWS_REGION: "us-east-1",
      AWS_PROFILE: undefined,
    };
  });
  afterAll(async () => {
    await aws?.stop();
  });

  it("uploads path: documents, lists s3: sources, writes job.json and the manifest, and queues one task per item", async () => {
    await aws.s3.send(new CreateBucketCommand({ Bucket: "source-docs" }));
    const sources = new ObjectStore(aws.s3, "source-docs");
    await sources.put("reports/2026/x.md", "# X\n\nRevenue doubled.\n", "text/markdown");
    await sources.put("reports/2026/y.md", "# Y\n\nMargins fell.\n", "text/markdown");
    await sources.put("reports/2026/folder/", "", "application/x-directory");
    const texts = { "a.md": "# A\n\nCash rose.\n", "b.md": "# B\n\nDebt fell.\n" };
    const jobDir = path.join(dir, "job");
    await makeJob(jobDir, "deployed", texts);
    const jobFile = path.join(jobDir, "deployed.yaml");
    await writeFile(jobFile, "name: deployed\ndocuments:\n  - path: docs/*.md\n  - s3: s3://source-docs/reports/2026/\nprompt: What changed?\n");

    const r = await cli(["submit", jobFile, "--json"], awsEnv);
    expect(r.code, r.stderr).toBe(0);
    const info = lastJson<{ jobId: string; items: number; uploaded: number; listed: number; bucket: string }>(r.stdout);
    expect(info).toMatchObject({ items: 4, uploaded: 2, listed: 2, bucket: aws.bucket });
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`submitted job ${info.jobId}: 4 item(s), model qwen3-max`);
    expect(r.stderr).toContain(`(bucket from LONGDOC_BUCKET)`);
    expect(r.stderr).toContain(`aws s3 cp s3://${aws.bucket}/runs/${info.jobId}/manifest.json -`);

    const store = new ObjectStore(aws.s3, aws.bucket);
    const job = (await store.getJson<JobRecord>(keys.job(info.jobId)))!;
    expect(job.maxReceives).toBe(deployment.maxReceives);
    expect(job.maxAttempts).toBe(3);
    const docs = job.items.map((i) => i.documents[0]!);
    expect(docs.map((d) => d.source)).toEqual([
      // Outside the current folder, sources are absolute paths.
      path.join(jobDir, "docs", "a.md"),
      path.join(jobDir, "docs", "b.md"),
      "s3://source-docs/reports/2026/x.md",
      "s3://source-docs/reports/2026/y.md",
    ]);
    for (const [n, file] of ["a.md", "b.md"].entries()) {
      const bytes = new TextEncoder().encode(texts[file as keyof typeof texts]);
      const key = inputKey(bytes, file);
      expect(docs[n]!.uri).toBe(`s3://${aws.bucket}/${key}`);
      expect(new TextDecoder().decode(await store.getBytes(key))).toBe(texts[file as keyof typeof texts]);
    }
    expect(docs.slice(2).map((d) => d.uri)).toEqual(["s3://source-docs/reports/2026/x.md", "s3://source-docs/reports/2026/y.md"]);
    expect(await store.getJson<Manifest>(keys.manifest(info.jobId))).toMatchObject({ status: "running", counts: { total: 4, succeeded: 0 } });

    const got = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: aws.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    const tasks = (got.Messages ?? []).map((m) => parseTaskMessage(m.Body!)).sort((a, b) => a.itemId.localeCompare(b.itemId));
    expect(tasks).toEqual(job.items.map((i) => ({ v: 1, jobId: info.jobId, itemId: i.id, bucket: aws.bucket, documents: [i.documents[0]!.uri] })));
    for (const m of got.Messages ?? []) await aws.sqs.send(new DeleteMessageCommand({ QueueUrl: aws.queueUrl, ReceiptHandle: m.ReceiptHandle! }));

    // cancel --deployed writes the marker the deployed workers honour; retry refuses a run still going.
    const c = await cli(["cancel", info.jobId, "--deployed"], awsEnv);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`cancel marker written at s3://${aws.bucket}/runs/${info.jobId}/cancel.json`);
    expect(await store.exists(keys.cancel(info.jobId))).toBe(true);
    const rt = await cli(["retry", info.jobId, "--deployed"], awsEnv);
    expect(rt.code).toBe(1);
    expect(rt.stderr).toContain("is still running: 4 of 4 item(s) have no result yet");
  }, 60_000);

  it("takes the coordinates from .sst/outputs.json; without them exits 1 naming both ways to give them", async () => {
    const jobDir = path.join(dir, "outputs");
    const jobFile = await makeJob(jobDir, "from-outputs", { "a.md": "# A\n" });
    const { LONGDOC_BUCKET: _b, LONGDOC_QUEUE_URL: _q, ...rest } = awsEnv;
    const noCoords = { ...rest, LONGDOC_BUCKET: undefined, LONGDOC_QUEUE_URL: undefined };

    const missing = await cli(["submit", jobFile], noCoords, jobDir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no deployed stack: the runs bucket and the task queue URL unknown");
    expect(missing.stderr).toContain(".sst/outputs.json");
    expect(missing.stderr).toContain("LONGDOC_BUCKET and LONGDOC_QUEUE_URL");

    await mkdir(path.join(jobDir, ".sst"));
    await writeFile(path.join(jobDir, ".sst", "outputs.json"), JSON.stringify({ bucket: aws.bucket, queue: aws.queueUrl, deadLetterQueue: aws.dlqUrl }));
    const r = await cli(["submit", jobFile, "--json"], noCoords, jobDir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("(bucket from .sst/outputs.json 'bucket')");
    const { jobId } = lastJson<{ jobId: string }>(r.stdout);
    expect(await new ObjectStore(aws.s3, aws.bucket).exists(keys.job(jobId))).toBe(true);
    await aws.sqs.send(new PurgeQueueCommand({ QueueUrl: aws.queueUrl }));
  }, 60_000);

  it("reads coordinates: env wins over outputs, each on its own; bad values and a region from the queue URL", async () => {
    const cwd = path.join(dir, "coords");
    await mkdir(path.join(cwd, ".sst"), { recursive: true });
    await writeFile(path.join(cwd, ".sst", "outputs.json"), JSON.stringify({ bucket: "from-outputs", queue: "https://sqs.eu-west-1.amazonaws.com/123/q" }));
    expect(readStackCoordinates({}, cwd)).toMatchObject({ bucket: "from-outputs", queueUrl: "https://sqs.eu-west-1.amazonaws.com/123/q" });
    expect(readStackCoordinates({ LONGDOC_BUCKET: "from-env" }, cwd)).toMatchObject({ bucket: "from-env", from: { bucket: "LONGDOC_BUCKET", queueUrl: ".sst/outputs.json 'queue'" } });
    expect(() => readStackCoordinates({ LONGDOC_QUEUE_URL: "not a url" }, cwd)).toThrow(/not a URL/);
    expect(() => readStackCoordinates({ LONGDOC_BUCKET: "Bad_Bucket" }, cwd)).toThrow(/not an S3 bucket name/);
    expect(() => readStackCoordinates({ LONGDOC_BUCKET: "b" + "x".repeat(5) }, path.join(dir, "nowhere"))).toThrow(/the task queue URL unknown/);
    await writeFile(path.join(cwd, ".sst", "outputs.json"), "{not json");
    expect(() => readStackCoordinates({}, cwd)).toThrow(/cannot read the stack outputs/);
    expect(regionOfQueueUrl("https://sqs.eu-west-1.amazonaws.com/123/q")).toBe("eu-west-1");
    expect(regionOfQueueUrl("http://127.0.0.1:4566/000000000000/q")).toBeUndefined();
  });
});
