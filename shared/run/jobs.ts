import { GetObjectCommand } from "@aws-sdk/client-s3";
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
    const m = await manifestSummary(store, jobId);
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

/** How much of a manifest's head is read first: its summary fields come before `items` and fit in far less. */
const HEAD_BYTES = 16 * 1024;

/**
 * A manifest without its items. The manifest of a 50,000-item job is tens of MB, and its summary
 * fields come first (buildManifest's order, written indented), so the first HEAD_BYTES are read
 * and cut at `"items":`; a manifest laid out otherwise is read whole.
 */
export async function manifestSummary(store: ObjectStore, jobId: string): Promise<Omit<Manifest, "items"> | undefined> {
  let head: string;
  try {
    const out = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: keys.manifest(jobId), Range: `bytes=0-${HEAD_BYTES - 1}` }));
    head = out.Body ? await out.Body.transformToString() : "";
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (e as { name?: string }).name === "NoSuchKey") return undefined;
    throw e;
  }
  const cut = head.indexOf('\n  "items": [');
  if (cut > 0) {
    try {
      return JSON.parse(`${head.slice(0, cut).replace(/,\s*$/, "")}\n}`) as Omit<Manifest, "items">;
    } catch {
      // Not the layout expected: read it whole below.
    }
  }
  return store.getJson<Manifest>(keys.manifest(jobId));
}

const listing = (m: Omit<Manifest, "items">): JobListing => ({
  jobId: m.jobId,
  job: m.job,
  status: m.status,
  counts: m.counts,
  cost: m.cost ?? m.costUsd ?? 0,
  currency: m.currency ?? "USD",
  startedAt: m.startedAt,
  finishedAt: m.finishedAt,
});
