/**
 * The finalizer's metrics, one EMF line per job it ends (shared/metrics/emf.ts): the job's items
 * by status, its cost and how long it ran. The worker's per-delivery lines are shared/worker/metrics.ts.
 */
import { emfRecord, type EmfRecord } from "../metrics/emf.ts";
import type { Manifest } from "./manifest.ts";

export const FINALIZER_SERVICE = "longdoc-finalizer";

export const FINALIZER_METRIC = {
  jobsEnded: "JobsEnded",
  jobItems: "JobItems",
  jobItemsSucceeded: "JobItemsSucceeded",
  jobItemsFailed: "JobItemsFailed",
  jobItemsSkipped: "JobItemsSkipped",
  jobCost: "JobCost",
  jobDurationS: "JobDurationSeconds",
} as const;

/** The EMF record of a job that ended, by its final status. */
export function jobEndedMetrics(m: Manifest, now = Date.now()): EmfRecord {
  const durationS = m.finishedAt ? Math.max(0, (Date.parse(m.finishedAt) - Date.parse(m.startedAt)) / 1000) : 0;
  const values = {
    [FINALIZER_METRIC.jobsEnded]: 1,
    [FINALIZER_METRIC.jobItems]: m.counts.total,
    [FINALIZER_METRIC.jobItemsSucceeded]: m.counts.succeeded,
    [FINALIZER_METRIC.jobItemsFailed]: m.counts.failed,
    [FINALIZER_METRIC.jobItemsSkipped]: m.counts.skipped,
    [FINALIZER_METRIC.jobCost]: Math.round(m.cost * 1e6) / 1e6,
    [FINALIZER_METRIC.jobDurationS]: Math.round(durationS),
  };
  const metrics = Object.keys(values).map((name) => ({ name, unit: name === FINALIZER_METRIC.jobCost ? ("None" as const) : name === FINALIZER_METRIC.jobDurationS ? ("Seconds" as const) : ("Count" as const) }));
  return emfRecord("longdoc", [{ dimensions: [["Service"], ["Service", "Status"]], metrics }], { Service: FINALIZER_SERVICE, Status: m.status, JobId: m.jobId, Currency: m.currency, ...values }, now);
}
