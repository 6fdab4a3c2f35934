// The worker's side of `batch.fallback: fail`: the provider's error the poller left for an item.
import type { ObjectStore } from "../run/store.ts";
import type { BatchFailure } from "./poll.ts";
import { batchKeys } from "./records.ts";

export async function batchFailure(d: { job: { jobId: string; spec: { mode?: string; batch?: { fallback?: string } } }; item: { id: string }; store: ObjectStore }): Promise<BatchFailure["error"] | null> {
  if (d.job.spec.mode !== "batch" || d.job.spec.batch?.fallback !== "fail") return null;
  return (await d.store.getJson<BatchFailure>(batchKeys.failed(d.job.jobId, d.item.id)))?.error ?? null;
}
