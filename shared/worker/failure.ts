/**
 * What a delivery does when a step throws, by the error's family (shared/errors.ts):
 *
 * - a wait (ReturnToQueue): the item goes back to the queue as it is; not an attempt;
 * - the infrastructure's (S3, DynamoDB past the SDK's retries): back to the queue, no attempt
 *   used, no item failed; the DLQ's receive count bounds a fault that never clears;
 * - the model's, when it may pass: another attempt after a backoff (a 429 rate limit does not use
 *   up the item's attempts); job-wide ones halt the job;
 * - the item's own, or the model's for good: the item ends, failed (or skipped at the cost cap).
 *
 * Either way the attempt's record keeps what happened, with every call already paid.
 */
import { isInfraFault, ModelError, toErrorRecord, type LongdocError } from "../errors.ts";
import { keys } from "../run/store.ts";
import { deployment } from "../settings.ts";
import type { WorkerTiming } from "./context.ts";
import { logContext, type Delivery } from "./delivery.ts";
import { emitDeliveryMetrics } from "./metrics.ts";
import type { Ended } from "./outcome.ts";
import { ReturnToQueue } from "./records.ts";

export async function onFailure(d: Delivery, e: unknown): Promise<Ended> {
  if (e instanceof ReturnToQueue || isInfraFault(e)) return handBack(d, e);
  const error = e as LongdocError;
  const record = {
    ...toErrorRecord(error),
    ...(error instanceof ModelError ? { ...(error.requestId ? { requestId: error.requestId } : {}), ...(error.status ? { status: error.status } : {}), ...(error.providerCode ? { providerCode: error.providerCode } : {}) } : {}),
  };
  const attempt = Math.max(1, d.recorder.number || d.claimed.attempts);
  d.deps.log.warn({ ...logContext(d), attempt, error: record }, "item attempt failed");
  // The attempt's record keeps the error beside its partial trace (none when no call was sent).
  await closeAttempt(d, "failed", record);
  if (error.haltsJob) await d.store.putJsonIfAbsent(keys.halt(d.job.jobId), { reason: record.message, kind: record.kind, itemId: d.item.id });
  const refused = error.code === "rate_limited";
  // A 429 is the provider's door closing, not a failed answer: it waits in the queue without
  // using up the item's attempts (the DLQ's receive count still bounds an endless refusal).
  const failures = attempt - d.claimed.refusals - (refused ? 1 : 0);
  if (error.retryable && (refused || failures < (d.job.maxAttempts ?? deployment.maxAttempts))) {
    if (refused && d.recorder.number > 0) await d.deps.coord.countRefusal(d.job.jobId, d.item.id);
    const n = refused ? d.ctx.receiveCount : attempt;
    return handBack(d, new ReturnToQueue(backoffMs(d.deps.timing, n) / 1000, `attempt ${attempt} failed (${record.kind}); retrying after a backoff`, backoffCeilingMs(d.deps.timing, n) / 1000));
  }
  // Never sent because the job reached its cost cap: skipped, not failed.
  return { kind: "ended", status: error.code === "cost_cap" ? "skipped" : "failed", error: { kind: record.kind, message: record.message }, documents: d.documents };
}

/** The task goes back to the queue: the attempt's record says it was interrupted, the claim is given up, the ledgers are settled. */
export async function handBack(d: Delivery, e: unknown): Promise<never> {
  if (!(e instanceof ReturnToQueue)) {
    const message = e instanceof Error ? e.message : String(e);
    d.deps.log.warn({ ...logContext(d), error: message }, "item interrupted by an error outside the model call; the task goes back to the queue");
    await closeAttempt(d, "interrupted", { kind: "internal", message });
  } else if (d.recorder.begun) {
    // A call already paid in this delivery stays in its attempt's record and in the journal.
    await closeAttempt(d, "interrupted", null);
  }
  await d.pending.finish();
  await d.deps.coord.releaseClaim(d.job.jobId, d.item.id, d.deps.owner).catch(() => undefined);
  emitDeliveryMetrics(d, { handedBack: e });
  throw e;
}

async function closeAttempt(d: Delivery, status: "failed" | "interrupted", error: Parameters<Delivery["recorder"]["close"]>[1]) {
  const closed = await d.recorder.close(status, error).catch(() => null);
  if (closed) d.pending.add("removing the attempt's open record", closed.removeSuperseded);
}

/** The most the n-th backoff can wait: base × 2^(n-1), capped. */
export const backoffCeilingMs = (t: WorkerTiming, n: number): number => Math.min(t.backoffCapMs, t.backoffBaseMs * 2 ** Math.max(0, n - 1));

/** Full jitter: a random wait in [0, min(cap, base × 2^(n-1))], so retries of many items spread out. */
export function backoffMs(t: WorkerTiming, attempt: number, random = Math.random): number {
  return Math.round(random() * backoffCeilingMs(t, attempt));
}
