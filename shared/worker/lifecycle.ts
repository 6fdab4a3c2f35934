/**
 * One delivery of one item, top to bottom (docs/architecture.md):
 *
 *   claim ─► guards ─► answer ─► persist ─► settle
 *
 * - claim:   take the item in the coordination store (its record is the item's one source of
 *            truth: status, attempts, deliveries, lease, place in the quota), or learn it is done
 *            or held by another delivery;
 * - guards:  halted? cancelled? submit unfinished? its place in the quota still ahead?
 * - answer:  read the documents whole and ask the model; returns an outcome, writes no item files;
 * - persist: the answer, trace and attempt files, then result.json;
 * - settle:  the record's terminal status, the ledgers, and the job's end after its last item.
 *
 * Errors are handled by family (failure.ts): a wait or an infrastructure fault hands the task
 * back to the queue (ReturnToQueue); a model fault that may pass is retried as another attempt;
 * anything else ends the item.
 */
import type { TaskMessage } from "../run/queue.ts";
import { answer } from "./answer.ts";
import { claim, startHeartbeat } from "./claim.ts";
import type { TaskContext, WorkerDeps } from "./context.ts";
import { handBack, onFailure } from "./failure.ts";
import { guards } from "./guards.ts";
import type { Outcome } from "./outcome.ts";
import { persist } from "./persist.ts";
import { recordFinished, settle } from "./settle.ts";

export type TaskOutcome = "succeeded" | "failed" | "skipped" | "already-done";

/**
 * Runs one task to a terminal state and returns it; throws ReturnToQueue when the task must wait
 * (for quota, a backoff, or a live claim held by another delivery).
 */
export async function runTask(deps: WorkerDeps, task: TaskMessage, ctx: TaskContext): Promise<TaskOutcome> {
  // The message keeps the queue's long visibility until told otherwise: a short one at once, so a
  // worker that dies early gives its task back within a lease. It lands before the task returns
  // (a wait's own visibility must come after it).
  const hidden = ctx.extendVisibility?.(Math.ceil(deps.timing.leaseMs / 1000)).catch((e: unknown) => deps.log.warn({ jobId: task.jobId, itemId: task.itemId, error: String(e) }, "heartbeat failed"));
  try {
    const d = await claim(deps, task, ctx);
    if ("finished" in d) {
      // A redelivery after the result was written: never pay for the call twice; record the end
      // in case the worker that wrote it died before recording it.
      deps.log.info({ jobId: task.jobId, itemId: task.itemId }, "the item is finished; no model call");
      await recordFinished(deps, d.store, d.job, task.itemId, d.finished);
      return "already-done";
    }
    const heartbeat = startHeartbeat(d);
    try {
      let outcome: Outcome;
      try {
        outcome = (await guards(d)) ?? (await answer(d));
      } catch (e) {
        outcome = await onFailure(d, e);
      }
      // A write that failed past its retries hands the task back; the next delivery finds the paid calls kept.
      const result = await persist(d, outcome).catch((e: unknown) => handBack(d, e));
      return await settle(d, result.status).catch((e: unknown) => handBack(d, e));
    } finally {
      heartbeat.stop();
    }
  } finally {
    await hidden;
  }
}
