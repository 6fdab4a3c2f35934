/**
 * What may stop a claimed item before its documents are read: the job's submit not finished (or
 * failed), a halt, a cancel, a currency the worker cannot price in, and the item's place in the
 * quota's future when it has one. A stop that ends the item is returned as its outcome; a wait
 * goes back to the queue (ReturnToQueue).
 */
import { ItemError } from "../errors.ts";
import { keys } from "../run/store.ts";
import { batchFailure } from "../run/batch-records.ts";
import type { Delivery } from "./delivery.ts";
import type { Ended } from "./outcome.ts";
import { ReturnToQueue } from "./records.ts";

/** Jobs known to be fully submitted: the state never changes back, so each container asks once. */
const submittedJobs = new Set<string>();
/** A submit that died without marking its job stays `submitting`; after this long it counts as failed. */
const SUBMIT_GRACE_MS = 15 * 60_000;
/** A place in the quota this close is waited for in the call itself, not in the queue. */
export const BOOKING_SLACK_MS = 6_000;
/**
 * A waiting task comes back this much before its place (under the slack): its documents are read
 * by then, and it starts early when the quota has room (bench:fleet 1.083 and 1.070 with 5 s, 1.081
 * to 1.109 with 2 s; a start taken early leaves later planned ones their room).
 */
export const ARRIVE_EARLY_MS = 5_000;

export async function guards(d: Delivery): Promise<Ended | null> {
  const { job, store } = d;
  const [submitted, halt, cancelled] = await Promise.all([submitState(d), store.getJson<{ reason: string }>(keys.halt(job.jobId)), store.exists(keys.cancel(job.jobId))]);
  if (submitted === "failed") {
    return skipped("submit_failed", "not sent: the job's submit failed part-way, so its queued tasks are not run; submit it again");
  }
  if (submitted === "submitting") {
    // The submit is still sending tasks; the job's record says when it is done.
    throw new ReturnToQueue(5, "the job is still being submitted");
  }
  if (halt) return skipped("halted", `the job was halted: ${halt.reason}`);
  if (cancelled) return skipped("cancelled", "the job was cancelled");
  // `mode: batch` with `batch.fallback: fail`: a call the provider's batch did not answer fails the item.
  const failed = await batchFailure(d);
  if (failed) return { kind: "ended", status: "failed", error: failed };
  // Costs of one job are in one currency: a worker whose endpoint bills in another region's
  // currency than the one the job was submitted for would mix them.
  if (job.currency !== d.currency) {
    throw new ItemError(
      "job_invalid",
      `the job was priced in ${job.currency} (region ${job.region}) when submitted, but this worker's endpoint bills in ${d.currency} (region ${d.deps.catalog.region}); give submit and the workers the same QWEN_BASE_URL (or LONGDOC_REGION)`,
      { haltsJob: true },
    );
  }
  const bookedAt = d.claimed.bookedAt;
  if (bookedAt !== null && bookedAt - d.now() > BOOKING_SLACK_MS) {
    // Its place in the quota's line is still ahead: wait in the queue until then, documents unread.
    throw new ReturnToQueue((bookedAt - ARRIVE_EARLY_MS - d.now()) / 1000, "waiting for its place in the account's quota", undefined, { wait: true });
  }
  return null;
}

const skipped = (kind: "submit_failed" | "halted" | "cancelled", message: string): Ended => ({ kind: "ended", status: "skipped", error: { kind, message } });

async function submitState(d: Delivery): Promise<"submitted" | "submitting" | "failed"> {
  const { job } = d;
  if (submittedJobs.has(job.jobId)) return "submitted";
  const rec = await d.deps.coord.readJobEntry(job.jobId);
  const state = rec === null || rec.state !== "submitting" ? (rec?.state === "failed" ? "failed" : "submitted") : d.now() - Date.parse(rec.createdAt) > SUBMIT_GRACE_MS ? "failed" : "submitting";
  if (state === "submitted") submittedJobs.add(job.jobId);
  return state;
}
