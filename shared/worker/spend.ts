import { LongdocError } from "../errors.ts";
import type { JobRecord } from "../job/record.ts";

/**
 * What one process has spent per job, so a run stops calling the model once `maxCostUsd` is
 * reached. Local runs keep every worker in one process, so there it is the job's whole spend;
 * a Lambda container sees only its own calls, which is why submit also checks the estimate.
 */
export class SpendTracker {
  private readonly spent = new Map<string, number>();

  /** Refuses a call whose input alone would take the job over its cap. */
  check(job: JobRecord, callInputCostUsd: number): void {
    const cap = job.limits.maxCostUsd;
    if (cap === null) return;
    const spent = this.spent.get(job.jobId) ?? 0;
    if (spent + callInputCostUsd > cap) {
      throw new LongdocError(
        "cost_cap",
        `not sent: the job has spent $${spent.toFixed(4)} and this call's input costs $${callInputCostUsd.toFixed(4)}, over limits.maxCostUsd ($${cap})`,
      );
    }
  }

  add(job: JobRecord, costUsd: number): void {
    this.spent.set(job.jobId, (this.spent.get(job.jobId) ?? 0) + costUsd);
  }
}
