import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { driveLocalRun, retryLocalJob, runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { loadJobForSubmit, submitLoadedJob } from "../shared/submit/load.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { createBatchApi } from "../shared/batch/api.ts";
import { pollJobBatches } from "../shared/batch/poll.ts";
import { batchKeys, readBatchRecords } from "../shared/run/batch-records.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { cancelJob } from "../shared/run/control.ts";
import { estimateJob } from "../shared/submit/estimate.ts";
import { loadJobFile } from "../shared/job/load.ts";

// The simulator stands in for Beijing, where qwen3-max is offered in batch.
const loop = useLoopback({ stack: { visibilityTimeoutS: 1 }, sim: { implicitCacheHitRate: 0, batch: { processingMs: 600 } } });
const settings = () => loadSettings({ ...loop.env(), LONGDOC_REGION: "cn-beijing" });
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "longdoc-batch-"));
  await mkdir(path.join(dir, "docs"), { recursive: true });
  for (const [name, figure] of [["alpha", 4], ["beta", 7], ["gamma", 11]] as const) {
    await writeFile(path.join(dir, "docs", `${name}.md`), `# ${name}\n\n` + `Revenue of ${name} rose ${figure}% in Q3 on pricing; costs fell 2%.\n`.repeat(20 + figure));
  }
});

async function jobFile(name: string, extra = "", mode = "batch"): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `name: ${name}\nmode: ${mode}\ndocuments:\n  - path: docs/*.md\nquestions:\n  - { id: rise, ask: "What rose, and by how much?" }\n  - { id: costs, ask: "What happened to costs?" }\ncalls: per-question\nmaxOutputTokens: 600\n${extra}`);
  return file;
}

const run = (file: string) => runLocalJob({ inProcess: true, jobFile: file, outDir: path.join(dir, "out"), workers: 1, settings: settings(), log: silentLog, stack: loop.stack, fresh: true, batchPollMs: 200 });
const store = () => new ObjectStore(loop.stack.s3, loop.stack.bucket);
const results = (jobId: string, ids: string[]) => Promise.all(ids.map((id) => store().getJson<ItemResult>(keys.item(jobId, id, "result.json"))));

describe("mode: batch on the local stack", () => {
  it("holds the batch's worst case at the batch price under the cost cap until it is applied, then what it cost", async () => {
    const file = await jobFile("capped", "limits: { maxCost: 5 }\n");
    const loaded = await loadJobForSubmit(file, settings().catalog);
    const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    const job = await submitLoadedJob({ s3: loop.stack.s3, sqs: loop.stack.sqs, bucket: loop.stack.bucket, queueUrl: loop.stack.queueUrl, maxReceives: 5, coord }, loaded);
    const [record] = await readBatchRecords(store(), job.jobId);
    expect(record!.worstCost).toBeGreaterThan(0);
    const deps = { store: store(), sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, coord, catalog: settings().catalog, api: createBatchApi({ apiKey: "sk-test", baseURL: loop.sim.baseURL }), log: silentLog };
    // Passes until the batch exists: its worst case is held, nothing spent yet.
    for (let i = 0; i < 50 && (await readBatchRecords(store(), job.jobId))[0]!.batchId === null; i++) {
      await pollJobBatches(deps, job.jobId);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await coord.spend(job.jobId)).toEqual({ spentUsd: 0, committedUsd: expect.closeTo(record!.worstCost!, 6) });
    for (let i = 0; i < 50 && (await pollJobBatches(deps, job.jobId)).open > 0; i++) await new Promise((r) => setTimeout(r, 150));
    // Applied: the hold is gone, what the lines cost at the batch price is spent.
    const attempts = await Promise.all(job.items.map((i) => store().getJson<AttemptRecord>(keys.attempt(job.jobId, i.id, 1))));
    const cost = attempts.reduce((sum, a) => sum + a!.cost, 0);
    const ledger = await coord.spend(job.jobId);
    expect(ledger.spentUsd).toBeCloseTo(cost, 6);
    expect(ledger.committedUsd).toBeCloseTo(cost, 6);
    expect(cost).toBeLessThan(record!.worstCost!);
  }, 60_000);

  it("answers every item through one batch at half the realtime cost, with no chat completion request", async () => {
    const chatBefore = loop.sim.calls.length;
    const batchesBefore = loop.sim.batches.list().length;
    const batch = await run(await jobFile("half-price"));
    expect(loop.sim.calls.length).toBe(chatBefore);
    const made = loop.sim.batches.list().slice(batchesBefore);
    // The free dry run of the file first, then the batch itself.
    expect(made).toEqual([
      expect.objectContaining({ status: "completed", lines: 6, endpoint: "/v1/chat/ds-test" }),
      expect.objectContaining({ status: "completed", lines: 6, endpoint: "/v1/chat/completions" }),
    ]);
    expect(batch.manifest).toMatchObject({ status: "succeeded", counts: { total: 3, succeeded: 3, failed: 0 }, currency: "CNY" });
    expect(batch.manifest.items.map((i) => i.mode)).toEqual(["batch", "batch", "batch"]);
    const records = await readBatchRecords(store(), batch.job.jobId);
    expect(records).toEqual([expect.objectContaining({ state: "completed", lines: 6, counts: { total: 6, completed: 6, failed: 0 }, dryRun: expect.objectContaining({ state: "completed", error: null }) })]);
    expect(records[0]!.appliedAt).not.toBeNull();
    expect(await store().exists(batchKeys.open(batch.job.jobId))).toBe(false);

    // The same job realtime: the same calls, the full price.
    const realtime = await run(await jobFile("half-price-realtime", "", "realtime"));
    expect(loop.sim.calls.length).toBe(chatBefore + 6);
    expect(realtime.manifest.status).toBe("succeeded");
    const ids = batch.job.items.map((i) => i.id);
    const [b, r] = await Promise.all([results(batch.job.jobId, ids), results(realtime.job.jobId, ids)]);
    for (const [i, br] of b.entries()) {
      const rr = r[i]!;
      expect(br).toMatchObject({ status: "succeeded", attempts: 1, usage: rr.usage });
      expect(br!.cost).toBeGreaterThan(0);
      expect(br!.cost * 2).toBeCloseTo(rr.cost, 10);
    }
    const sum = (xs: (ItemResult | undefined)[]) => xs.reduce((s, x) => s + x!.cost, 0);
    expect(sum(b) * 2).toBeCloseTo(sum(r), 10);
    // The answers are the ones the realtime calls gave (the same generator, the same requests).
    const answer = (jobId: string, id: string) => store().getBytes(keys.item(jobId, id, "answer.md")).then((x) => new TextDecoder().decode(x));
    expect(await answer(batch.job.jobId, ids[0]!)).toBe(await answer(realtime.job.jobId, ids[0]!));
    // The attempt record says what the batch billed; the journal is gone once the item has its result.
    const attempt = await store().getJson<AttemptRecord & { batch: { batchId: string } }>(keys.attempt(batch.job.jobId, ids[0]!, 1));
    expect(attempt).toMatchObject({ status: "succeeded", owner: "batch-poller", batch: { batchId: records[0]!.batchId } });
    expect(attempt!.calls.map((c) => c.label).sort()).toEqual(["costs", "rise"]);
    expect(await store().listKeys(keys.item(batch.job.jobId, ids[0]!, "attempts/calls/"))).toEqual([]);
  }, 90_000);

  it("lines in the error file run realtime under fallback: realtime, and fail their item under fallback: fail", async () => {
    const chatBefore = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "500", count: 1 });
    const fallback = await run(await jobFile("error-file-realtime"));
    expect(fallback.manifest).toMatchObject({ status: "succeeded", counts: { succeeded: 3 } });
    // The one line the batch failed was asked again, realtime.
    expect(loop.sim.calls.length).toBe(chatBefore + 1);
    const [rec] = await readBatchRecords(store(), fallback.job.jobId);
    expect(rec!.counts).toEqual({ total: 6, completed: 5, failed: 1 });
    expect(fallback.manifest.items.map((i) => i.mode).sort()).toEqual(["batch", "batch", "realtime"]);
    const asked = fallback.manifest.items.find((i) => i.mode === "realtime")!;
    expect((await results(fallback.job.jobId, [asked.id]))[0]!.modeReason).toMatch(/did not answer 1 call\(s\) \(internal_error: .*\); asked realtime at the realtime price/);

    loop.sim.injectFaults({ kind: "500", count: 1 });
    const failing = await run(await jobFile("error-file-fail", "batch: { fallback: fail }\n"));
    expect(loop.sim.calls.length).toBe(chatBefore + 1);
    expect(failing.manifest).toMatchObject({ status: "partial", counts: { succeeded: 2, failed: 1 } });
    const failed = failing.manifest.items.find((i) => i.status === "failed")!;
    expect(failed.error!.message).toMatch(/did not answer \(batch.fallback: fail\): internal_error/);
    // Its answered question was billed at the batch price and is counted.
    expect(failed.cost).toBeGreaterThan(0);

    // retry runs the failed item realtime: its one call the batch did not answer, and its answered one again.
    const retried = await retryLocalJob({ inProcess: true, jobId: failing.job.jobId, stack: loop.stack, settings: settings(), log: silentLog, outDir: path.join(dir, "out"), workers: 1 });
    expect(retried.manifest).toMatchObject({ status: "succeeded", counts: { succeeded: 3 } });
    expect(loop.sim.calls.length).toBe(chatBefore + 3);
  }, 90_000);

  it("an expired batch's lines run realtime", async () => {
    loop.sim.batches.configure({ outcome: "expired" });
    try {
      const chatBefore = loop.sim.calls.length;
      const r = await run(await jobFile("expired"));
      expect((await readBatchRecords(store(), r.job.jobId)).map((x) => x.state)).toEqual(["expired"]);
      expect(r.manifest).toMatchObject({ status: "succeeded", counts: { succeeded: 3 } });
      expect(loop.sim.calls.length).toBe(chatBefore + 6);
    } finally {
      loop.sim.batches.configure({ outcome: "completed" });
    }
  }, 90_000);

  it("splits a job across two batches at the line limit, and a poller run again writes nothing twice", async () => {
    const s = settings();
    const loaded = await loadJobForSubmit(await jobFile("split"), s.catalog);
    const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    const job = await submitLoadedJob({ s3: loop.stack.s3, sqs: loop.stack.sqs, bucket: loop.stack.bucket, queueUrl: loop.stack.queueUrl, maxReceives: 5, coord, batchLimits: { maxLines: 4 } }, loaded);
    const records = await readBatchRecords(store(), job.jobId);
    // Two lines per item, at most four per file: an item's lines never span two files.
    expect(records.map((r) => [r.lines, r.items.length])).toEqual([[4, 2], [2, 1]]);

    // The poller by hand, as a scheduled function would run it, until both batches are applied.
    const deps = { store: store(), sqs: loop.stack.sqs, queueUrl: "http://unused.invalid/queue", coord, catalog: s.catalog, api: createBatchApi({ apiKey: "sk-test", baseURL: loop.sim.baseURL }), log: silentLog };
    const sent: string[] = [];
    const sqs = { send: async (c: { input: { Entries: { MessageBody: string }[] } }) => (c.input.Entries.forEach((e) => sent.push(JSON.parse(e.MessageBody).itemId)), { Failed: [] }) };
    // First a poller that dies while applying a finished batch: its answers and attempt records are written, no task is sent.
    const dying = { send: async () => { throw new Error("killed"); } };
    let died = false;
    for (let i = 0; i < 50 && !died; i++) {
      died = await pollJobBatches({ ...deps, sqs: dying as never }, job.jobId).then(() => false, (e: Error) => e.message === "killed");
      if (!died) await new Promise((r) => setTimeout(r, 150));
    }
    expect(died).toBe(true);
    // Whichever batch finished first was applied before the poller died.
    expect(await Promise.all(job.items.map((i) => store().exists(keys.attempt(job.jobId, i.id, 1))))).toContain(true);
    for (let i = 0; i < 50 && (await pollJobBatches({ ...deps, sqs: sqs as never }, job.jobId)).open > 0; i++) await new Promise((r) => setTimeout(r, 150));
    expect(sent.sort()).toEqual(job.items.map((i) => i.id).sort());
    const snapshot = async () => Promise.all(job.items.map(async (i) => (await store().listKeys(keys.item(job.jobId, i.id, "attempts/"))).sort()));
    const before = await snapshot();
    // Killed after applying, before recording it: the next run applies the batches again.
    for (const r of await readBatchRecords(store(), job.jobId)) await store().putJson(batchKeys.record(job.jobId, r.index), { ...r, appliedAt: null, appliedThrough: 0 });
    await store().putJson(batchKeys.open(job.jobId), { jobId: job.jobId });
    await pollJobBatches({ ...deps, sqs: sqs as never }, job.jobId);
    expect(await snapshot()).toEqual(before);
    for (const keysOfItem of before) expect(keysOfItem.filter((k) => /attempts\/\d+\.json$/.test(k))).toHaveLength(1);

    // Now the workers: the tasks the poller would have queued.
    const { sendTasks } = await import("../shared/run/queue.ts");
    await sendTasks(loop.stack.sqs, loop.stack.queueUrl, job.items.map((i) => ({ v: 1, jobId: job.jobId, itemId: i.id, bucket: loop.stack.bucket, documents: i.documents.map((d) => d.uri) })));
    const chatBefore = loop.sim.calls.length;
    const driven = await driveLocalRun({ inProcess: true, stack: loop.stack, job, settings: s, log: silentLog, outDir: path.join(dir, "out"), workers: 1, batchPollMs: 200 });
    expect(loop.sim.calls.length).toBe(chatBefore);
    expect(driven.manifest).toMatchObject({ status: "succeeded", counts: { succeeded: 3 } });
    for (const item of driven.manifest.items) expect(item.attempts).toBe(1);
  }, 90_000);

  it("a line over the per-line limit runs realtime", async () => {
    const s = settings();
    const loaded = await loadJobForSubmit(await jobFile("big-line"), s.catalog);
    const target = { s3: loop.stack.s3, sqs: loop.stack.sqs, bucket: loop.stack.bucket, queueUrl: loop.stack.queueUrl, maxReceives: 5 };
    // The line sizes as planned, from a first submit; the limit then falls between gamma's (the longest document) and the others'.
    const first = await submitLoadedJob(target, loaded);
    const lines = new TextDecoder().decode(await store().getBytes(batchKeys.input(first.jobId, 0))).trim().split("\n");
    const size = (who: string) => Math.max(...lines.filter((l) => l.includes(`"custom_id":"${who}`)).map((l) => Buffer.byteLength(l) + 1));
    const [gamma, others] = [first.items.find((i) => i.id.includes("gamma"))!.id, first.items.filter((i) => !i.id.includes("gamma")).map((i) => i.id)];
    const limit = Math.floor((size(gamma) + Math.max(...others.map(size))) / 2);
    const job = await submitLoadedJob({ ...target, batchLimits: { maxLineBytes: limit } }, loaded);
    const [rec] = await readBatchRecords(store(), job.jobId);
    expect(rec!.items).toEqual(others);
    const chatBefore = loop.sim.calls.length;
    const driven = await driveLocalRun({ inProcess: true, stack: loop.stack, job, settings: s, log: silentLog, outDir: path.join(dir, "out"), workers: 1, batchPollMs: 200 });
    expect(driven.manifest).toMatchObject({ status: "succeeded", counts: { succeeded: 3 } });
    expect(loop.sim.calls.length - chatBefore).toBe(6 - 2 * rec!.items.length);
    expect((await results(job.jobId, [gamma]))[0]).toMatchObject({ mode: "realtime", modeReason: `not batched: a request of ${size(gamma)} bytes is over the Batch API's ${limit} bytes per line; it ran realtime` });
  }, 90_000);

  it("refuses a region without batch for the model, and samples with batch", async () => {
    const singapore = loadSettings({ ...loop.env() });
    await expect(loadJobForSubmit(await jobFile("sg"), singapore.catalog)).rejects.toThrow(/mode: batch: the endpoint's region is ap-southeast-1, but its Batch API serves qwen3-max only in cn-beijing/);
    await expect(loadJobForSubmit(await jobFile("sampled", "samples: 3\n"), settings().catalog)).rejects.toThrow(/samples: need\(s\) several dependent calls/);
  });

  it("cancel mid-batch cancels the provider batch and skips its items, with no model call", async () => {
    // Validating for a third of this, cancelling for a quarter: long enough to act on, short to end.
    loop.sim.batches.configure({ processingMs: 20_000 });
    try {
      const s = settings();
      const loaded = await loadJobForSubmit(await jobFile("cancelled"), s.catalog);
      const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
      const job = await submitLoadedJob({ s3: loop.stack.s3, sqs: loop.stack.sqs, bucket: loop.stack.bucket, queueUrl: loop.stack.queueUrl, maxReceives: 5, coord }, loaded);
      const deps = { store: store(), sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, coord, catalog: s.catalog, api: createBatchApi({ apiKey: "sk-test", baseURL: loop.sim.baseURL }), log: silentLog };
      // (no dry run here: it would take a tenth of the batch's processing time)
      const [planned] = await readBatchRecords(store(), job.jobId);
      await store().putJson(batchKeys.record(job.jobId, 0), { ...planned, dryRun: { skipped: "not in this test" } });
      await pollJobBatches(deps, job.jobId);
      const [created] = await readBatchRecords(store(), job.jobId);
      expect(created!.state).toBe("validating");
      await cancelJob({ store: store() }, job.jobId);
      const chatBefore = loop.sim.calls.length;
      const driven = await driveLocalRun({ inProcess: true, stack: loop.stack, job, settings: s, log: silentLog, outDir: path.join(dir, "out"), workers: 1, batchPollMs: 200 });
      expect(loop.sim.batches.list().find((b) => b.id === created!.batchId)!.status).toBe("cancelled");
      expect((await readBatchRecords(store(), job.jobId))[0]).toMatchObject({ state: "cancelled", appliedAt: expect.any(String) });
      expect(driven.manifest).toMatchObject({ status: "cancelled", counts: { skipped: 3 } });
      expect(loop.sim.calls.length).toBe(chatBefore);
    } finally {
      loop.sim.batches.configure({ processingMs: 600 });
    }
  }, 90_000);

  it("a batch the endpoint no longer knows (a restarted simulator) ends failed and its lines run realtime", async () => {
    const s = settings();
    const loaded = await loadJobForSubmit(await jobFile("gone"), s.catalog);
    const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    const job = await submitLoadedJob({ s3: loop.stack.s3, sqs: loop.stack.sqs, bucket: loop.stack.bucket, queueUrl: loop.stack.queueUrl, maxReceives: 5, coord }, loaded);
    const [r] = await readBatchRecords(store(), job.jobId);
    await store().putJson(batchKeys.record(job.jobId, r!.index), { ...r, state: "in_progress", fileId: "file-gone", batchId: "batch_gone" });
    const chatBefore = loop.sim.calls.length;
    const driven = await driveLocalRun({ inProcess: true, stack: loop.stack, job, settings: s, log: silentLog, outDir: path.join(dir, "out"), workers: 1, batchPollMs: 200 });
    expect((await readBatchRecords(store(), job.jobId))[0]).toMatchObject({ state: "failed", error: expect.stringContaining("does not know this batch") });
    expect(driven.manifest).toMatchObject({ status: "succeeded", counts: { succeeded: 3 } });
    expect(loop.sim.calls.length).toBe(chatBefore + 6);
  }, 90_000);

  it("estimate prices a batch job at half the realtime price, input uncached, beside the realtime figures", async () => {
    const file = await jobFile("estimated");
    const e = await estimateJob(await loadJobFile(file), file, settings().catalog);
    expect(e.batch).toBeDefined();
    expect(e.batch!.priceFactor).toBe(0.5);
    expect(e.batch!.cost).toBeCloseTo((e.totals.cost + e.totals.cacheSavings) / 2, 5);
    expect(e.batch!.inputCost).toBeCloseTo((e.totals.inputCost + e.totals.cacheSavings) / 2, 5);
    const realtime = await jobFile("estimated-rt", "", "realtime");
    expect((await estimateJob(await loadJobFile(realtime), realtime, settings().catalog)).batch).toBeUndefined();
  });

  it("a file the free dry run refuses is never paid for: the batch ends failed and its lines follow the fallback", async () => {
    const s = settings();
    const loaded = await loadJobForSubmit(await jobFile("dry-run-refused", "batch: { fallback: fail }\n"), s.catalog);
    const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    const job = await submitLoadedJob({ s3: loop.stack.s3, sqs: loop.stack.sqs, bucket: loop.stack.bucket, queueUrl: loop.stack.queueUrl, maxReceives: 5, coord }, loaded);
    // A line without messages: the dry run refuses it.
    const input = new TextDecoder().decode(await store().getBytes(batchKeys.input(job.jobId, 0))).trim().split("\n");
    const broken = JSON.parse(input[0]!);
    broken.body.messages = [];
    await store().put(batchKeys.input(job.jobId, 0), [JSON.stringify(broken), ...input.slice(1)].join("\n") + "\n", "application/jsonl");
    const before = loop.sim.batches.list().length;
    const driven = await driveLocalRun({ inProcess: true, stack: loop.stack, job, settings: s, log: silentLog, outDir: path.join(dir, "out"), workers: 1, batchPollMs: 200 });
    expect(loop.sim.batches.list().slice(before).map((b) => b.endpoint)).toEqual(["/v1/chat/ds-test"]);
    const [rec] = await readBatchRecords(store(), job.jobId);
    expect(rec).toMatchObject({ state: "failed", batchId: null, error: expect.stringContaining("the free dry run (batch-test-model) refused the file, so no batch was paid for: line ") });
    expect(driven.manifest).toMatchObject({ status: "failed", counts: { failed: 3 }, cost: 0 });
    expect(driven.manifest.items[0]!.error!.message).toContain("messages must be a non-empty array");
  }, 90_000);
});
