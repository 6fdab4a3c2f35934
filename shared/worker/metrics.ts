/**
 * The worker's metrics, one EMF line per delivery (shared/metrics/emf.ts), printed when the
 * delivery ends: settled (the item finished) or handed back to the queue (a wait for quota, a
 * backoff after a retryable failure, an infrastructure fault). The dashboard and alarms of
 * infra/monitoring.ts read them; the names below are theirs.
 */
import { ReturnToQueue } from "./records.ts";
import type { Delivery } from "./delivery.ts";
import { emfRecord, type EmfDirective, type EmfRecord } from "../metrics/emf.ts";
import type { TerminalStatus } from "../run/coord.ts";

export const METRICS_NAMESPACE = "longdoc";
export const SERVICE = "longdoc-worker";

/** Every metric a delivery reports, under the service (and spend also per job). */
export const METRIC = {
  deliveries: "Deliveries",
  itemsFinished: "ItemsFinished",
  modelCalls: "ModelCalls",
  rateLimited: "RateLimited",
  inputTokens: "InputTokens",
  outputTokens: "OutputTokens",
  spend: "Spend",
  quotaWaits: "QuotaWaits",
  retries: "Retries",
  infraFaults: "InfraFaults",
} as const;

export type DeliveryEnd = { status: TerminalStatus } | { handedBack: unknown };

/** The EMF record of a delivery that ended: its calls (from the attempt it closed, if it made one) and how it ended. */
export function deliveryMetrics(d: Pick<Delivery, "job" | "item" | "recorder" | "currency">, end: DeliveryEnd, now = Date.now()): EmfRecord {
  const calls = d.recorder.closed?.calls ?? [];
  const back = "handedBack" in end ? end.handedBack : undefined;
  const values = {
    [METRIC.deliveries]: 1,
    [METRIC.modelCalls]: calls.length,
    [METRIC.rateLimited]: calls.filter((c) => c.error?.kind === "rate_limited").length,
    [METRIC.inputTokens]: calls.reduce((n, c) => n + c.usage.inputTokens, 0),
    [METRIC.outputTokens]: calls.reduce((n, c) => n + c.usage.outputTokens, 0),
    [METRIC.spend]: Math.round(calls.reduce((n, c) => n + c.cost, 0) * 1e6) / 1e6,
    [METRIC.quotaWaits]: back instanceof ReturnToQueue && back.wait ? 1 : 0,
    [METRIC.retries]: back instanceof ReturnToQueue && !back.wait ? 1 : 0,
    [METRIC.infraFaults]: back !== undefined && !(back instanceof ReturnToQueue) ? 1 : 0,
  };
  const service = { dimensions: [["Service"]], metrics: Object.keys(values).map((name) => ({ name, unit: name === METRIC.spend ? "None" : "Count" })) } as EmfDirective;
  const perJob: EmfDirective = { dimensions: [["Service", "JobId"]], metrics: [{ name: METRIC.spend, unit: "None" }] };
  const directives = [service, perJob];
  const fields: Record<string, string | number> = { Service: SERVICE, JobId: d.job.jobId, ItemId: d.item.id, Currency: d.currency, ...values };
  if ("status" in end) {
    directives.push({ dimensions: [["Service", "Status"]], metrics: [{ name: METRIC.itemsFinished, unit: "Count" }] });
    Object.assign(fields, { Status: end.status, [METRIC.itemsFinished]: 1 });
  }
  return emfRecord(METRICS_NAMESPACE, directives, fields, now);
}

/** Prints the delivery's metrics where the worker's deps say (only the Lambda handler sets a sink); never fails the delivery. */
export function emitDeliveryMetrics(d: Pick<Delivery, "job" | "item" | "recorder" | "currency" | "deps">, end: DeliveryEnd): void {
  if (!d.deps.metrics) return;
  try {
    d.deps.metrics(deliveryMetrics(d, end));
  } catch (e) {
    d.deps.log.warn({ jobId: d.job.jobId, itemId: d.item.id, error: String(e) }, "cannot print the delivery's metrics");
  }
}
