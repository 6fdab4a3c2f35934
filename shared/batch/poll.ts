/**
 * The batch poller: one pass over a job's batches, safe to run any number of times and to kill at
 * any point. A `pending` batch gets its input file uploaded and its batch created (a create that
 * was cut short is found again by its input file); an open one has its state and request counts
 * read; a finished one (completed, failed, expired, cancelled) is applied once:
 *
 * - each answered line goes to its item's journal of paid calls, at the key the worker will look
 *   for (custom_id = <itemId>/<callKey>), and the item gets one attempt record with those calls'
 *   usage and their cost at the batch price;
 * - a line without an answer (in the error file, or in a batch that failed or expired) follows
 *   `batch.fallback`: `realtime` leaves it out of the journal, so the worker calls the model for
 *   it at the realtime price; `fail` records the provider's error, which the worker fails the item with;
 * - then the item's ordinary task is queued: its delivery finds its calls kept, makes no model
 *   call, and persists and settles as for realtime.
 *
 * A line is never written twice: journal entries are keyed by the call, and the item's attempt
 * record names its batch, so a second pass finds it and counts nothing again.
 */
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { getModel, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { addUsage, zeroUsage } from "../model/usage.ts";
import type { Coordinator } from "../run/coord.ts";
import { inBatches } from "../run/manifest.ts";
import { sendTasks, type TaskMessage } from "../run/queue.ts";
import { keys, type ObjectStore } from "../run/store.ts";
import type { AttemptRecord, CallRecord } from "../run/attempt-record.ts";
import { UnknownInputFile, type BatchApi } from "./api.ts";
import { readOutputLine, type OutputLine } from "./line.ts";
import { batchKeys, parseCustomId, readBatchRecords, TERMINAL_STATES, type BatchFailure, type BatchRecord } from "../run/batch-records.ts";
import { batchPriceFor } from "./support.ts";

export interface BatchPollDeps {
  store: ObjectStore;
  sqs: SQSClient;
  queueUrl: string;
  coord: Coordinator;
  catalog: Catalog;
  api: BatchApi;
  log: Pick<Log, "info" | "warn">;
  now?: () => number;
}

/** Items applied between two checkpoints of a batch record. */
const APPLY_CHUNK = 500;

/** An item's attempt record made from batch lines: the ordinary record, naming its batch. */
export type BatchAttemptRecord = AttemptRecord & { batch: { batchId: string; index: number } };

/** Polls every job with a batch not yet applied (the scheduled function's whole work). */
export async function pollOpenBatches(deps: BatchPollDeps): Promise<{ jobs: number; open: number }> {
  const open = await deps.store.listKeys(batchKeys.openPrefix);
  let left = 0;
  for (const key of open) {
    const jobId = key.slice(batchKeys.openPrefix.length, -".json".length);
    try {
      left += (await pollJobBatches(deps, jobId)).open;
    } catch (e) {
      // One job's trouble (its endpoint, a bad file) must not stop the others' polling.
      deps.log.warn({ jobId, error: e instanceof Error ? e.message : String(e) }, "batch poll failed; tried again next time");
    }
  }
  return { jobs: open.length, open: left };
}

/** One pass over one job's batches; returns how many are still open. */
export async function pollJobBatches(deps: BatchPollDeps, jobId: string): Promise<{ open: number; records: BatchRecord[] }> {
  const { store } = deps;
  const job = await store.getJson<JobRecord>(keys.job(jobId));
  if (!job) throw new Error(`${keys.job(jobId)} is missing`);
  const model = getModel(deps.catalog, job.model);
  const cancelled = await store.exists(keys.cancel(jobId));
  const records = await readBatchRecords(store, jobId);
  for (const r of records) {
    if (r.appliedAt) continue;
    await advance(deps, job, r, cancelled);
    if (TERMINAL_STATES.has(r.state)) await apply(deps, job, model, r);
  }
  const open = records.filter((r) => !r.appliedAt).length;
  if (open === 0) await store.delete(batchKeys.open(jobId));
  return { open, records };
}

/** Creates a pending batch, or reads an open one's state; a cancelled job's batches are cancelled. */
async function advance(deps: BatchPollDeps, job: JobRecord, r: BatchRecord, cancelled: boolean): Promise<void> {
  const { store, api } = deps;
  const save = async (changes: Partial<BatchRecord>) => {
    Object.assign(r, changes, { updatedAt: new Date((deps.now ?? Date.now)()).toISOString() });
    await store.putJson(batchKeys.record(job.jobId, r.index), r);
  };
  if (r.state === "pending" && cancelled) return save({ state: "cancelled", error: "the job was cancelled before its batch was created" });
  if (r.state === "pending") {
    // The job's first file is checked for free before anything is paid.
    if (r.index === 0 && !(r.dryRun && ("skipped" in r.dryRun || r.dryRun.state === "completed"))) {
      const checked = await dryRun(deps, job, r);
      if (checked === "wait") return save({});
      if (checked !== "passed") return save({ state: "failed", error: checked });
    }
    if (!r.fileId) {
      const content = await store.getBytes(r.inputKey);
      if (!content) throw new Error(`${r.inputKey} is missing`);
      await save({ fileId: await api.uploadFile(`${job.jobId}-${r.index}.jsonl`, new TextDecoder().decode(content)) });
    }
    // The cost cap holds the batch's worst case at the batch price before anything is paid.
    const hold = await reserveBatch(deps, job, r);
    if (hold === "wait") return save({});
    if (hold !== "ok") return save({ state: "failed", error: hold });
    if (r.reserved && !r.reserved.released) await save({});
    let made;
    try {
      made = (await api.findBatch(r.fileId!)) ?? (await api.createBatch(r.fileId!, { longdoc_job: job.jobId, longdoc_batch: String(r.index) }));
    } catch (e) {
      // Uploaded to an endpoint that has forgotten it: the next pass uploads it again.
      if (e instanceof UnknownInputFile) return save({ fileId: null });
      throw e;
    }
    deps.log.info({ jobId: job.jobId, batch: r.index, batchId: made.id, lines: r.lines }, "batch created");
    return save({ batchId: made.id, state: made.status, counts: made.counts.total ? made.counts : r.counts });
  }
  if (TERMINAL_STATES.has(r.state)) return;
  let b = await api.retrieveBatch(r.batchId!);
  if (cancelled && !TERMINAL_STATES.has(b.status) && b.status !== "cancelling") b = await api.cancelBatch(r.batchId!);
  if (b.status !== r.state || b.counts.completed !== r.counts.completed || b.counts.failed !== r.counts.failed) {
    await save({ state: b.status, counts: b.counts.total ? b.counts : r.counts, outputFileId: b.outputFileId, errorFileId: b.errorFileId, error: b.error });
  }
}

/** How many lines, and bytes, the free dry run takes (docs/qwen-api.md §8). */
const DRY_RUN_LINES = 100;
const DRY_RUN_BYTES = 1024 * 1024;

/**
 * The free dry run of the file's first lines (model `batch-test-model`, endpoint
 * `/v1/chat/ds-test`): "wait" while it runs, "passed", or why the file was refused. An endpoint
 * that does not offer it (the create is refused) skips it.
 */
async function dryRun(deps: BatchPollDeps, job: JobRecord, r: BatchRecord): Promise<"wait" | "passed" | string> {
  const { api, store } = deps;
  if (!r.dryRun) {
    const input = new TextDecoder().decode((await store.getBytes(r.inputKey)) ?? new Uint8Array());
    const lines: string[] = [];
    let bytes = 0;
    for (const text of input.split("\n")) {
      if (!text.trim() || lines.length >= DRY_RUN_LINES) continue;
      const line = JSON.parse(text) as { url: string; body: Record<string, unknown> };
      const test = JSON.stringify({ ...line, url: "/v1/chat/ds-test", body: { ...line.body, model: "batch-test-model" } });
      if (bytes + Buffer.byteLength(test) + 1 > DRY_RUN_BYTES) break;
      lines.push(test);
      bytes += Buffer.byteLength(test) + 1;
    }
    try {
      const fileId = await api.uploadFile(`${job.jobId}-${r.index}-dry-run.jsonl`, lines.join("\n") + "\n");
      const b = await api.createBatch(fileId, { longdoc_job: job.jobId, longdoc_dry_run: "true" }, "/v1/chat/ds-test");
      r.dryRun = { batchId: b.id, state: b.status, error: null };
    } catch (e) {
      r.dryRun = { skipped: `the endpoint offers no dry run: ${e instanceof Error ? e.message : String(e)}` };
      return "passed";
    }
    return "wait";
  }
  if ("skipped" in r.dryRun) return "passed";
  const b = await api.retrieveBatch(r.dryRun.batchId);
  r.dryRun.state = b.status;
  if (!TERMINAL_STATES.has(b.status)) return "wait";
  let error = b.status === "completed" ? null : (b.error ?? `the dry run ${b.status}`);
  if (!error && b.errorFileId) {
    const first = (await api.fileContent(b.errorFileId)).split("\n").find((l) => l.trim());
    const read = first ? readOutputLine(JSON.parse(first) as OutputLine) : null;
    error = read && "error" in read ? `line ${(JSON.parse(first!) as OutputLine).custom_id}: ${read.error.code}: ${read.error.message}` : "the dry run failed some lines";
  }
  if (!error) return "passed";
  r.dryRun.error = error;
  r.dryRun.state = "failed";
  return `the free dry run (batch-test-model) refused the file, so no batch was paid for: ${error}`;
}

/**
 * Holds the batch's worst case (its lines' input and caps at the batch price) in the job's ledger
 * once, before the batch is created. `wait` while calls in flight hold the rest of the cap; a
 * message when the cap is reached (the batch then fails and its lines follow the fallback).
 */
async function reserveBatch(deps: BatchPollDeps, job: JobRecord, r: BatchRecord): Promise<"ok" | "wait" | string> {
  const cap = job.limits.maxCost;
  if (cap === null || r.reserved || !r.worstCost) return "ok";
  const got = await deps.coord.reserveSpend(job.jobId, r.worstCost, cap);
  if (got.ok) {
    r.reserved = { cost: r.worstCost, released: false };
    return "ok";
  }
  if (!got.capReached) return "wait";
  return `not created: its ${r.lines} requests could cost up to ${r.worstCost.toFixed(4)} at the batch price, and the job has spent ${got.spentUsd.toFixed(4)} of its cost cap (${cap})`;
}

/** Applies a finished batch: answers to journals, attempt records, failures, then every item's task. */
async function apply(deps: BatchPollDeps, job: JobRecord, model: ModelInfo, r: BatchRecord): Promise<void> {
  const { store, api } = deps;
  const lines = async (fileId: string | null) => (fileId ? parseLines(await api.fileContent(fileId)) : []);
  const [out, errors, input] = await Promise.all([lines(r.outputFileId), lines(r.errorFileId), store.getBytes(r.inputKey)]);
  const byItem = new Map<string, ItemLines>();
  const of = (itemId: string) => byItem.get(itemId) ?? byItem.set(itemId, { answered: new Map(), failed: new Map() }).get(itemId)!;
  for (const line of [...out, ...errors]) {
    const id = parseCustomId(line.custom_id ?? "");
    if (!id) continue;
    const read = readOutputLine(line);
    if ("result" in read) of(id.itemId).answered.set(id.callKey, read.result);
    else of(id.itemId).failed.set(id.callKey, read.error);
  }
  // A line neither answered nor in the error file: the batch ended without it (failed, expired, cancelled).
  const unanswered = { code: `batch_${r.state}`, message: r.error ? `the batch ${r.state}: ${r.error}` : `the batch ${r.state} before answering this request`, requestId: null };
  for (const text of new TextDecoder().decode(input ?? new Uint8Array()).split("\n")) {
    if (!text.trim()) continue;
    const id = parseCustomId((JSON.parse(text) as { custom_id: string }).custom_id);
    if (id && !of(id.itemId).answered.has(id.callKey) && !of(id.itemId).failed.has(id.callKey)) of(id.itemId).failed.set(id.callKey, unanswered);
  }
  // In chunks, each checkpointed: a pass cut off by its function's timeout goes on where it stopped.
  for (let from = r.appliedThrough ?? 0; from < r.items.length; from += APPLY_CHUNK) {
    const chunk = r.items.slice(from, from + APPLY_CHUNK);
    const tasks: TaskMessage[] = [];
    let cost = 0;
    await inBatches(chunk, 16, async (itemId) => {
      const item = job.items.find((i) => i.id === itemId);
      if (!item) return;
      // Awaited first: `cost += await` would read `cost` before the await and lose the other items' share.
      const itemCost = await applyItem(deps, job, model, r, itemId, byItem.get(itemId) ?? { answered: new Map(), failed: new Map() });
      cost += itemCost;
      tasks.push({ v: 1, jobId: job.jobId, itemId, bucket: store.bucket, documents: item.documents.map((d) => d.uri) });
    });
    // The batch's spend enters the job's ledger, so a cost cap counts it before any realtime fallback.
    if (job.limits.maxCost !== null && r.reserved && !r.reserved.released) {
      // The worst case held since the batch was created goes back once, when its first items are applied.
      await deps.coord.settleSpend(job.jobId, r.reserved.cost, 0);
      r.reserved.released = true;
      await store.putJson(batchKeys.record(job.jobId, r.index), r);
    }
    if (job.limits.maxCost !== null && cost > 0) await deps.coord.settleSpend(job.jobId, 0, cost);
    await sendTasks(deps.sqs, deps.queueUrl, tasks);
    r.appliedThrough = from + chunk.length;
    await store.putJson(batchKeys.record(job.jobId, r.index), r);
  }
  r.appliedAt = new Date((deps.now ?? Date.now)()).toISOString();
  await store.putJson(batchKeys.record(job.jobId, r.index), r);
  deps.log.info({ jobId: job.jobId, batch: r.index, state: r.state, answered: out.length, failed: r.lines - out.length }, "batch applied; its items' tasks are queued");
}

interface ItemLines {
  answered: Map<string, import("../model/client.ts").ChatResult>;
  failed: Map<string, { code: string; message: string; requestId: string | null }>;
}

/** One item's lines: kept answers and one attempt record (once), or the failure `fallback: fail` leaves. Returns the cost newly recorded. */
async function applyItem(deps: BatchPollDeps, job: JobRecord, model: ModelInfo, r: BatchRecord, itemId: string, lines: ItemLines): Promise<number> {
  const { store } = deps;
  // Its attempt record is written last: found, the item's lines were applied by an earlier pass.
  if (r.batchId && (await findBatchAttempt(store, job.jobId, itemId, r.batchId))) return 0;
  const failFallback = job.spec.batch?.fallback === "fail";
  const firstFailure = [...lines.failed.values()][0];
  if (failFallback && firstFailure) {
    const failure: BatchFailure = { version: 1, batchId: r.batchId, error: { kind: "model_error", message: `the provider's batch ${r.batchId ?? ""} did not answer (batch.fallback: fail): ${firstFailure.code}: ${firstFailure.message}`.replace("  ", " ") } };
    await store.putJson(batchKeys.failed(job.jobId, itemId), failure);
  }
  if (!failFallback && firstFailure) {
    const reason = `the provider's batch ${r.batchId ?? ""} did not answer ${lines.failed.size} call(s) (${firstFailure.code}: ${firstFailure.message}); asked realtime at the realtime price (batch.fallback: realtime)`.replace("  ", " ");
    await store.putJson(batchKeys.realtime(job.jobId, itemId), { reason });
  }
  await Promise.all(
    [...lines.answered].map(([key, result]) => store.putJson(keys.item(job.jobId, itemId, `attempts/calls/${key}.json`), { version: 1, label: labelOf(key, r), result })),
  );
  if (lines.answered.size === 0) return 0;
  const calls: CallRecord[] = [...lines.answered].map(([key, result]) => ({
    label: labelOf(key, r),
    requestId: result.requestId,
    finishReason: result.finishReason,
    usage: result.usage,
    usageEstimated: false,
    cost: batchPriceFor(model, { ...result.usage, cacheType: result.cacheType }),
    maxOutputTokens: 0,
    thinkingBudget: null,
    maxCompletionTokens: null,
    limitedByDeadline: false,
    inputTokens: result.usage.inputTokens,
    startedAt: r.createdAt,
    firstChunkMs: null,
    durationMs: null,
    error: null,
  }));
  const at = new Date((deps.now ?? Date.now)()).toISOString();
  const cost = Number(calls.reduce((s, c) => s + c.cost, 0).toFixed(10));
  const n = await deps.coord.countAttempt(job.jobId, itemId);
  const record: BatchAttemptRecord = {
    version: 1,
    attempt: n,
    status: lines.failed.size ? "failed" : "succeeded",
    owner: "batch-poller",
    startedAt: r.createdAt,
    finishedAt: at,
    calls,
    usage: calls.reduce((u, c) => addUsage(u, c.usage), zeroUsage()),
    usageEstimated: false,
    cost,
    currency: job.currency,
    finishReason: calls.at(-1)?.finishReason ?? null,
    requestId: calls.at(-1)?.requestId ?? null,
    error: firstFailure ? { kind: "model_error", message: `${firstFailure.code}: ${firstFailure.message}` } : null,
    reasoning: null,
    answer: null,
    inFlightCalls: [],
    batch: { batchId: r.batchId!, index: r.index },
  };
  await store.putJson(keys.attempt(job.jobId, itemId, n), record);
  return cost;
}

/** The attempt record an earlier pass wrote for this batch, if any. */
async function findBatchAttempt(store: ObjectStore, jobId: string, itemId: string, batchId: string): Promise<boolean> {
  const found = (await store.listKeys(keys.item(jobId, itemId, "attempts/"))).filter((k) => /\/attempts\/\d+\.json$/.test(k));
  for (const key of found) if ((await store.getJson<Partial<BatchAttemptRecord>>(key))?.batch?.batchId === batchId) return true;
  return false;
}

/** The question a call answers, from its journal key's slug (null for an item's single call). */
function labelOf(key: string, r: BatchRecord): string | null {
  return r.labels?.[key] ?? null;
}

function parseLines(text: string): OutputLine[] {
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as OutputLine);
}
