// `longdoc jobs`: every job of a local state, or of a deployed stack's bucket (the emulator
// standing in for AWS), newest first, with status, counts, cost and times, through the CLI.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { finalizeJob } from "../shared/run/finalize.ts";
import { resultWithoutCall } from "../shared/run/manifest.ts";
import { manifestSummary, type JobListing } from "../shared/run/jobs.ts";
import { buildManifest, summary } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { longdoc } from "./helpers/cli.ts";

/** Three jobs: an older one that succeeded, a newer one that ended partial, the newest still running (1 of 3 items done). */
async function makeJobs(stack: LocalStack): Promise<{ old: JobRecord; partial: JobRecord; running: JobRecord }> {
  const store = new ObjectStore(stack.s3, stack.bucket);
  const coord = createCoordinator(stack.dynamo.client, stack.dynamo.table);
  await store.put("inputs/jobs/a.md", "# A\n", "text/markdown");
  const submit = (name: string, n: number, at: string) =>
    submitJob(
      { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: 5, coord, now: () => new Date(at) },
      { spec: parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\n`, `${name}.yaml`), model: getModel(loadCatalog(), "qwen3-max"), documents: Array.from({ length: n }, (_, i) => ({ source: `a${i}.md`, uri: s3Uri(stack.bucket, "inputs/jobs/a.md") })), outputSchema: null },
    );
  const finish = async (job: JobRecord, id: string, status: "succeeded" | "failed", cost: number, at: string) => {
    const r = resultWithoutCall(job, id, { status, attempts: 1, error: { kind: "model_error", message: "x" }, at });
    await store.putJson(keys.item(job.jobId, id, "result.json"), { ...r, error: status === "failed" ? r.error : null, cost, costUsd: cost });
  };
  const old = await submit("nightly", 2, "2026-12-01T06:00:00.000Z");
  for (const i of old.items) await finish(old, i.id, "succeeded", 0.25, "2026-12-01T06:10:00.000Z");
  await finalizeJob({ s3: stack.s3, log: silentLog }, { jobId: old.jobId, bucket: stack.bucket });
  const partial = await submit("filings", 3, "2026-12-03T09:00:00.000Z");
  await finish(partial, partial.items[0]!.id, "succeeded", 1.5, "2026-12-03T09:30:00.000Z");
  await finish(partial, partial.items[1]!.id, "succeeded", 1, "2026-12-03T09:31:00.000Z");
  await finish(partial, partial.items[2]!.id, "failed", 0, "2026-12-03T09:32:00.000Z");
  await finalizeJob({ s3: stack.s3, log: silentLog }, { jobId: partial.jobId, bucket: stack.bucket });
  const running = await submit("memos", 3, "2026-12-05T12:00:00.000Z");
  await finish(running, running.items[0]!.id, "succeeded", 0.125, "2026-12-05T12:05:00.000Z");
  return { old, partial, running };
}

const expected = (j: { old: JobRecord; partial: JobRecord; running: JobRecord }, runningStatus: string): JobListing[] => [
  { jobId: j.running.jobId, job: "memos", status: runningStatus as JobListing["status"], counts: { total: 3, succeeded: 1, failed: 0, skipped: 0 }, cost: 0.125, currency: "USD", startedAt: "2026-12-05T12:00:00.000Z", finishedAt: null },
  { jobId: j.partial.jobId, job: "filings", status: "partial", counts: { total: 3, succeeded: 2, failed: 1, skipped: 0 }, cost: 2.5, currency: "USD", startedAt: "2026-12-03T09:00:00.000Z", finishedAt: "2026-12-03T09:32:00.000Z" },
  { jobId: j.old.jobId, job: "nightly", status: "succeeded", counts: { total: 2, succeeded: 2, failed: 0, skipped: 0 }, cost: 0.5, currency: "USD", startedAt: "2026-12-01T06:00:00.000Z", finishedAt: "2026-12-01T06:10:00.000Z" },
];

describe("longdoc jobs", () => {
  let dir: string;
  let state: string;
  let local: { old: JobRecord; partial: JobRecord; running: JobRecord };
  let stack: LocalStack;
  let deployed: { old: JobRecord; partial: JobRecord; running: JobRecord };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-jobs-"));
    state = path.join(dir, "state");
    const persisted = await startLocalStack({ dataDir: state });
    try {
      local = await makeJobs(persisted);
    } finally {
      await persisted.stop();
    }
    stack = await startLocalStack();
    deployed = await makeJobs(stack);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("--json: every job of the local state, newest first, with the contract's fields; a running job whose run is gone is interrupted", async () => {
    const r = await longdoc(["jobs", "--json", "--state", state]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { jobs: JobListing[] };
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(out.jobs).toEqual(expected(local, "interrupted"));
    // The table goes to stderr with --json.
    expect(r.stderr).toContain("3 job(s), newest first");
  });

  it("without --json: a table on stdout, one line per job", async () => {
    const r = await longdoc(["jobs", "--state", state]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^job id\s+name\s+status\s+ok\/failed\/skipped\/total\s+cost\s+started\s+finished$/);
    expect(lines[2]).toContain(local.running.jobId);
    expect(lines[2]).toMatch(/memos\s+interrupted\s+1\/0\/0\/3/);
    expect(lines[3]).toMatch(/filings\s+partial\s+2\/1\/0\/3\s+\$2\.50/);
    expect(lines[4]).toMatch(/nightly\s+succeeded\s+2\/0\/0\/2/);
  });

  it("--deployed: the jobs in the stack's bucket; a running job there is running", async () => {
    const aws = {
      LONGDOC_BUCKET: stack.bucket,
      LONGDOC_QUEUE_URL: stack.queueUrl,
      AWS_ENDPOINT_URL: stack.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      AWS_PROFILE: undefined,
      AWS_ENDPOINT_URL_S3: undefined,
    };
    const r = await longdoc(["jobs", "--deployed", "--json"], aws);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout.trim()) as { jobs: JobListing[] }).jobs).toEqual(expected(deployed, "running"));
  });

  it("an empty or missing state: says so; a missing state is the user's to fix (exit 1)", async () => {
    const r = await longdoc(["jobs", "--state", path.join(dir, "nothing-here")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no local runs in/);
  });

  it("reads only the head of a large manifest: its summary, the same as the whole manifest's", async () => {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const job = deployed.running;
    const many = { ...job, jobId: "many-20261206-000000-abcd", items: Array.from({ length: 2_000 }, (_, i) => ({ id: `item-${i}`, documents: [{ source: `d${i}.md`, uri: "s3://b/k" }] })) };
    const m = buildManifest(many, new Map());
    await store.putJson(keys.manifest(many.jobId), m);
    let bytes = 0;
    stack.s3.middlewareStack.add((next) => async (args) => {
      const out = await next(args);
      bytes += Number((out.response as { headers?: Record<string, string> }).headers?.["content-length"] ?? 0);
      return out;
    }, { step: "deserialize", name: "countManifestBytes" });
    try {
      expect(await manifestSummary(store, many.jobId)).toEqual(summary(m));
      expect(bytes).toBeLessThanOrEqual(16 * 1024);
      expect(JSON.stringify(m).length).toBeGreaterThan(200 * 1024);
    } finally {
      stack.s3.middlewareStack.remove("countManifestBytes");
    }
    expect(await manifestSummary(store, "no-such-job")).toBeUndefined();
  });
});
