/**
 * What longdoc keeps of a job's provider batches, in S3 beside the run:
 *
 *   runs/<jobId>/batches/<n>.jsonl            the input file as planned (one line per call)
 *   runs/<jobId>/batches/<n>.json             the batch: file and batch ids, state, request counts
 *   runs/<jobId>/items/<item>/batch-failed.json    `batch.fallback: fail`: the provider's error the item fails with
 *   runs/<jobId>/items/<item>/batch-realtime.json  why an item's calls (some or all) ran realtime
 *   batches-open/<jobId>.json                 a job with a batch not yet applied (what the scheduled poller visits)
 */
import type { ObjectStore } from "./store.ts";

/** The provider's batch states (docs/qwen-api.md §8), and `pending`: planned, not yet created. */
export type BatchState = "pending" | "validating" | "in_progress" | "finalizing" | "completed" | "failed" | "expired" | "cancelling" | "cancelled";
export const TERMINAL_STATES: ReadonlySet<BatchState> = new Set(["completed", "failed", "expired", "cancelled"]);

export interface BatchRecord {
  version: 1;
  jobId: string;
  index: number;
  /** S3 key of the input file. */
  inputKey: string;
  lines: number;
  bytes: number;
  /** The items whose calls are lines of this file (an item's calls never span two files). */
  items: string[];
  state: BatchState;
  fileId: string | null;
  batchId: string | null;
  counts: { total: number; completed: number; failed: number };
  outputFileId: string | null;
  errorFileId: string | null;
  /** The provider's error for the whole batch (failed at validation), if any. */
  error: string | null;
  createdAt: string;
  updatedAt: string;
  /** The question of each per-question call, by journal key (absent for an item's single call). */
  labels?: Record<string, string>;
  /**
   * The job's first batch only: the free dry run of its first lines with `batch-test-model`, which
   * checks the file before anything is paid; `skipped` when the endpoint does not offer it.
   */
  dryRun?: { batchId: string; state: BatchState; error: string | null } | { skipped: string };
  /** The most its lines could cost at the batch price (their input and caps), reserved in the job's ledger when the batch is created. */
  worstCost?: number;
  /** Set when that reservation was made; released (settled to what the batch cost) when the batch is applied. */
  reserved?: { cost: number; released: boolean };
  /** While a finished batch is applied: how many of `items` are done (kept, recorded, queued). */
  appliedThrough?: number;
  /** Set once every item's answers were kept and its task sent. */
  appliedAt: string | null;
}

export const batchKeys = {
  prefix: (jobId: string) => `runs/${jobId}/batches/`,
  input: (jobId: string, n: number) => `runs/${jobId}/batches/${n}.jsonl`,
  record: (jobId: string, n: number) => `runs/${jobId}/batches/${n}.json`,
  /** In the item's folder, so that `retry` (which moves the item's files to previous/) lifts it. */
  failed: (jobId: string, itemId: string) => `runs/${jobId}/items/${itemId}/batch-failed.json`,
  /** Why an item of a batch job ran (some of) its calls realtime: not batched at submit, or a fallback. */
  realtime: (jobId: string, itemId: string) => `runs/${jobId}/items/${itemId}/batch-realtime.json`,
  openPrefix: "batches-open/",
  open: (jobId: string) => `batches-open/${jobId}.json`,
};

/** custom_id of a line: the item and the journal key of the call, so an answer lands where the worker looks for it. */
export const customId = (itemId: string, callKey: string) => `${itemId}/${callKey}`;

export function parseCustomId(id: string): { itemId: string; callKey: string } | null {
  const at = id.lastIndexOf("/");
  return at > 0 ? { itemId: id.slice(0, at), callKey: id.slice(at + 1) } : null;
}

/** Every batch record of a job, in index order. */
export async function readBatchRecords(store: ObjectStore, jobId: string): Promise<BatchRecord[]> {
  const found = (await store.listKeys(batchKeys.prefix(jobId))).filter((k) => /\/batches\/\d+\.json$/.test(k));
  const records = await Promise.all(found.map((k) => store.getJson<BatchRecord>(k)));
  return records.filter((r): r is BatchRecord => r?.version === 1).sort((a, b) => a.index - b.index);
}

/** What status shows of a job's batches. */
export function batchSummary(records: BatchRecord[]): { batches: number; states: Record<string, number>; requests: { total: number; completed: number; failed: number } } {
  const states: Record<string, number> = {};
  const requests = { total: 0, completed: 0, failed: 0 };
  for (const r of records) {
    states[r.state] = (states[r.state] ?? 0) + 1;
    requests.total += r.counts.total || r.lines;
    requests.completed += r.counts.completed;
    requests.failed += r.counts.failed;
  }
  return { batches: records.length, states, requests };
}

/** What `fallback: fail` leaves for the worker: the error its item fails with. */
export interface BatchFailure {
  version: 1;
  batchId: string | null;
  error: { kind: "model_error"; message: string };
}

/** The provider's error a batch job's item fails with under `batch.fallback: fail`, if the poller left one. */
export async function batchFailure(d: { job: { jobId: string; spec: { mode?: string; batch?: { fallback?: string } } }; item: { id: string }; store: ObjectStore }): Promise<BatchFailure["error"] | null> {
  if (d.job.spec.mode !== "batch" || d.job.spec.batch?.fallback !== "fail") return null;
  return (await d.store.getJson<BatchFailure>(batchKeys.failed(d.job.jobId, d.item.id)))?.error ?? null;
}

/** Why a batch job's item made realtime calls, as its result says it. */
export async function realtimeReason(store: ObjectStore, jobId: string, itemId: string): Promise<string | null> {
  return (await store.getJson<{ reason: string }>(batchKeys.realtime(jobId, itemId)).catch(() => undefined))?.reason ?? null;
}
