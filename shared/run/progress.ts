import { keys, ObjectStore } from "./store.ts";
import { LongdocError } from "../errors.ts";
import type { JobRecord } from "../job/record.ts";
import { buildManifest, summary, type ItemResult, type Manifest } from "./manifest.ts";
import { openaiBatchObject, type OpenAIBatchObject } from "./openai-batch.ts";
import { batchSummary, readBatchRecords } from "./batch-records.ts";

/**
 * The progress of a run, computed from what is in the store (the job record and the item results
 * that exist), so it is right while the run is going and agrees with manifest.json once it is done.
 * It is the run summary (the manifest without items) extended with progress fields.
 */
export type RunProgress = Omit<Manifest, "items" | "counts"> & {
  counts: Manifest["counts"] & {
    /** Items without a result yet. */
    queued: number;
    /** Of the queued items, those that already had a failed attempt and wait for another delivery. */
    retrying: number;
  };
  halted: boolean;
  cancelled: boolean;
  /** Since submission; up to `finishedAt` once the run is done. */
  elapsedMs: number;
  /** Finished items per minute over the elapsed time; null before the first item finishes. */
  itemsPerMinute: number | null;
  /** Time left at that rate while running; 0 when done; null while no item has finished. */
  etaMs: number | null;
  /** `mode: batch`: the provider batches, how many are in each state, and their request counts. */
  batches?: ReturnType<typeof batchSummary>;
};

/** The progress with `openaiBatch` (OpenAI's batch object) when the job came from a batch file. */
export async function withOpenAIBatch(store: ObjectStore, p: RunProgress): Promise<RunProgress & { openaiBatch?: OpenAIBatchObject }> {
  const batch = openaiBatchObject(p, await readJob(store, p.jobId));
  return batch ? { ...p, openaiBatch: batch } : p;
}

export interface ProgressInput {
  job: JobRecord;
  results: Map<string, ItemResult>;
  /** Items with a recorded failed attempt (attempts/<n>.json). */
  attempted?: Set<string>;
  halted?: boolean;
  cancelled?: boolean;
  now: number;
}

/**
 * Pure: counts, usage and cost come from `buildManifest` (the same function that writes
 * manifest.json), and the ETA from the rate of finished items while running:
 * remaining × elapsed / finished.
 */
export function computeProgress(input: ProgressInput): RunProgress {
  const { job, results, now } = input;
  const halted = input.halted ?? false;
  const cancelled = input.cancelled ?? false;
  const m = buildManifest(job, results, { halted, cancelled });
  const finished = m.counts.succeeded + m.counts.failed + m.counts.skipped;
  const queued = m.counts.total - finished;
  const retrying = m.items.filter((i) => i.status === "queued" && input.attempted?.has(i.id)).length;
  const startedMs = Date.parse(m.startedAt);
  const endMs = m.finishedAt !== null ? Date.parse(m.finishedAt) : now;
  const elapsedMs = Math.max(0, endMs - startedMs);
  const rate = finished > 0 && elapsedMs > 0 ? finished / elapsedMs : null; // items per ms
  const etaMs = m.status !== "running" ? 0 : rate === null ? null : Math.round(queued / rate);
  return {
    ...summary(m),
    counts: { ...m.counts, queued, retrying },
    halted,
    cancelled,
    elapsedMs,
    itemsPerMinute: rate === null ? null : Math.round(rate * 60_000 * 100) / 100,
    etaMs,
  };
}

/** Reads a job record; an unknown job id is the user's input fault and names recent job ids. */
export async function readJob(store: ObjectStore, jobId: string): Promise<JobRecord> {
  const job = /^[A-Za-z0-9._-]+$/.test(jobId) ? await store.getJson<JobRecord>(keys.job(jobId)) : undefined;
  if (job) return job;
  const recent = await recentJobIds(store, 5);
  throw new LongdocError(
    "job_invalid",
    `no job '${jobId}' in ${store.label}` + (recent.length ? `; most recent: ${recent.join(", ")}` : "; there are no runs there yet"),
  );
}

/**
 * What `readProgress` learned so far; pass it back on the next poll so results already read are
 * not read again (a result.json is written once and never changes).
 */
export interface ProgressCache {
  results: Map<string, ItemResult>;
  job?: JobRecord;
}

export const newProgressCache = (): ProgressCache => ({ results: new Map() });

/** The progress of a run from the store: one listing of its items plus the results not read yet. */
export async function readProgress(store: ObjectStore, jobId: string, opts: { now?: () => number; cache?: ProgressCache } = {}): Promise<RunProgress> {
  const cache = opts.cache ?? newProgressCache();
  const job = (cache.job ??= await readJob(store, jobId));
  const prefix = keys.itemsPrefix(jobId);
  const finished = new Set<string>();
  const attempted = new Set<string>();
  for (const key of await store.listKeys(prefix)) {
    const [itemId, file, ...rest] = key.slice(prefix.length).split("/");
    if (!itemId) continue;
    if (file === "result.json" && rest.length === 0) finished.add(itemId);
    // attempts/<n>.json is an attempt that ended; a running one has only its .open.json and partial files.
    else if (file === "attempts" && rest.length === 1 && /^\d+\.json$/.test(rest[0]!)) attempted.add(itemId);
  }
  const known = new Set(job.items.map((i) => i.id));
  await Promise.all(
    [...finished]
      .filter((id) => known.has(id) && !cache.results.has(id))
      .map(async (id) => {
        const r = await store.getJson<ItemResult>(keys.item(jobId, id, "result.json"));
        if (r) cache.results.set(id, r);
      }),
  );
  const [halted, cancelled] = await Promise.all([store.exists(keys.halt(jobId)), store.exists(keys.cancel(jobId))]);
  const progress = computeProgress({ job, results: cache.results, attempted, halted, cancelled, now: (opts.now ?? Date.now)() });
  return job.spec.mode === "batch" ? { ...progress, batches: batchSummary(await readBatchRecords(store, jobId)) } : progress;
}

/** Job ids under runs/, newest first (by the timestamp in the id, then by name). */
export async function recentJobIds(store: ObjectStore, limit = 5): Promise<string[]> {
  const ids = await store.listFolders(keys.runsPrefix);
  const stamp = (id: string) => /-(\d{8}-\d{6})-[0-9a-f]{4}$/.exec(id)?.[1] ?? "";
  return ids.sort((a, b) => stamp(b).localeCompare(stamp(a)) || b.localeCompare(a)).slice(0, limit);
}
