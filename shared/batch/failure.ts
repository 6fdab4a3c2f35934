// The worker's side of a batch job: the provider's error `batch.fallback: fail` leaves, and why an item ran realtime.
import type { ObjectStore } from "../run/store.ts";
import type { BatchFailure } from "./poll.ts";
import { batchKeys } from "./records.ts";

export async function batchFailure(d: { job: { jobId: string; spec: { mode?: string; batch?: { fallback?: string } } }; item: { id: string }; store: ObjectStore }): Promise<BatchFailure["error"] | null> {
  if (d.job.spec.mode !== "batch" || d.job.spec.batch?.fallback !== "fail") return null;
  return (await d.store.getJson<BatchFailure>(batchKeys.failed(d.job.jobId, d.item.id)))?.error ?? null;
}

/** Why a batch job's item made realtime calls, as its result says it. */
export async function realtimeReason(store: ObjectStore, jobId: string, itemId: string): Promise<string | null> {
  return (await store.getJson<{ reason: string }>(batchKeys.realtime(jobId, itemId)).catch(() => undefined))?.reason ?? null;
}
