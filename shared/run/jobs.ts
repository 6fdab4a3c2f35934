import type { Manifest } from "./manifest.ts";
import { inBatches } from "./manifest.ts";
import { readProgress } from "./progress.ts";
import { keys, type ObjectStore } from "./store.ts";

/** One line of `longdoc jobs`: the fields of the contract, from the job's manifest (or its progress while it runs). */
export interface JobListing {
  jobId: string;
  job: string;
  status: Manifest["status"];
  counts: Manifest["counts"];
  cost: number;
  currency: string;
  startedAt: string;
  finishedAt: string | null;
}

/**
 * Every job in the store, newest first (by `startedAt`, then id). A finished job is its manifest's
 * summary; a running job's manifest is submit's (every item queued), so its counts and cost come
 * from its results as `status` computes them. A folder under runs/ without a manifest (a submit
 * that died before writing one) is left out.
 */
export async function listJobs(store: ObjectStore, o: { now?: () => number } = {}): Promise<JobListing[]> {
  const ids = await store.listFolders(keys.runsPrefix);
  const out: JobListing[] = [];
  await inBatches(ids, 16, async (jobId) => {
    const m = await store.getJson<Manifest>(keys.manifest(jobId));
    if (!m) return;
    if (m.status !== "running") {
      out.push(listing(m));
      return;
    }
    const p = await readProgress(store, jobId, { now: o.now });
    out.push({ jobId, job: p.job, status: p.status, counts: { total: p.counts.total, succeeded: p.counts.succeeded, failed: p.counts.failed, skipped: p.counts.skipped }, cost: p.cost, currency: p.currency, startedAt: p.startedAt, finishedAt: p.finishedAt });
  });
  return out.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.jobId.localeCompare(a.jobId));
}

const listing = (m: Manifest): JobListing => ({
  jobId: m.jobId,
  job: m.job,
  status: m.status,
  counts: m.counts,
  cost: m.cost ?? m.costUsd ?? 0,
  currency: m.currency ?? "USD",
  startedAt: m.startedAt,
  finishedAt: m.finishedAt,
});
