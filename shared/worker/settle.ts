/**
 * The settle step: the item's record takes its terminal status (the coordination store is the
 * item's one source of truth; result.json was written from the same outcome just before), the
 * delivery's pending bookkeeping ends, and the delivery that finishes the job's last item ends
 * the job.
 */
import type { JobRecord } from "../job/record.ts";
import type { TerminalStatus } from "../run/coord.ts";
import { inlineFinalizer } from "../run/finalize.ts";
import type { ObjectStore } from "../run/store.ts";
import type { WorkerDeps } from "./context.ts";
import { logContext, type Delivery } from "./delivery.ts";
import { emitDeliveryMetrics } from "./metrics.ts";
import { keepPaid } from "./paid.ts";

export async function settle(d: Delivery, status: TerminalStatus): Promise<TerminalStatus> {
  // The settling of the calls' ledgers starts beside the finish; the delivery ends after both.
  d.pending.add("removing the item's journal of paid calls", () => d.journal.clear());
  d.pending.start();
  await recordFinished(d.deps, d.store, d.job, d.item.id, status);
  await d.pending.finish();
  d.deps.log.info({ ...logContext(d), status, steps: d.steps.summary() }, "item done");
  emitDeliveryMetrics(d, { status });
  return status;
}

/**
 * Records the item's terminal status (once, whoever asks). The delivery that finishes the job's
 * last item hands the job's end to the finalizer, which runs in its own invocation (inline where
 * none is configured).
 */
export async function recordFinished(deps: Pick<WorkerDeps, "coord" | "notifier" | "finalizer" | "s3" | "log">, store: ObjectStore, job: JobRecord, itemId: string, status: TerminalStatus): Promise<void> {
  const { last } = await keepPaid(() => deps.coord.finishItem(job.jobId, itemId, status, job.items.length));
  // Only this caller learns it was last: the hand-off must not be lost to a passing fault.
  if (!last) return;
  const finalizer = deps.finalizer ?? inlineFinalizer({ s3: deps.s3, coord: deps.coord, notifier: deps.notifier, log: deps.log });
  await keepPaid(() => finalizer.request({ jobId: job.jobId, bucket: store.bucket }));
}
