import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { parseTaskMessage, type TaskMessage } from "../run/queue.ts";
import { keys, ObjectStore } from "../run/store.ts";
import type { ErrorCode } from "../errors.ts";
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { resultWithoutCall } from "../run/manifest.ts";
import type { Coordinator } from "../run/coord.ts";
import type { Finalizer } from "../run/finalize.ts";
import type { JobNotifier } from "../run/notify.ts";
import { eachRecord, once, receiveCount, type Lazy } from "./records.ts";
import { getModel, priceFor, type Catalog } from "../model/catalog.ts";
import { closeAbandonedAttempt, earlierAttempts } from "./attempt.ts";
import { recordFinished } from "./settle.ts";

export interface DeadTaskDeps {
  s3: S3Client;
  /** Counts the item finished, so the job's last item still writes the manifest. */
  coord: Coordinator;
  log: Log;
  now?: () => number;
  /** Tells that a job ended when this recorder finishes its last item. */
  notifier?: JobNotifier;
  /** Prices an attempt the last worker left open, so its counted cost reaches the result and the ledger (without it the attempt stays open). */
  catalog?: Catalog;
  /** Ends the job when this recorder counts its last item (the finalize queue); without it the recorder finalizes in its own invocation. */
  finalizer?: Finalizer;
}

/**
 * A task in the dead-letter queue never got a result (its worker kept dying, e.g. out of memory
 * or time). Marks the item failed with the last recorded attempt error, so the manifest still
 * lists every item exactly once. It ends in the coordination table like any other item, so
 * the worker (or this recorder) that finishes the job's last item writes the manifest.
 */
export async function recordDeadTask(deps: DeadTaskDeps, task: TaskMessage, _dlqReceives: number): Promise<void> {
  const store = new ObjectStore(deps.s3, task.bucket);
  const resultKey = keys.item(task.jobId, task.itemId, "result.json");
  const job = await store.getJson<JobRecord>(keys.job(task.jobId));
  if (!job) {
    deps.log.error({ jobId: task.jobId, itemId: task.itemId }, "dead task for an unknown job; dropped");
    return;
  }
  if (!(await store.exists(resultKey))) {
    let attemptKeys = await store.listKeys(keys.item(task.jobId, task.itemId, "attempts/"));
    // The last worker died mid-attempt: close its attempt as the next delivery would have.
    const open = attemptKeys.flatMap((k) => /\/(\d+)\.open\.json$/.exec(k)?.[1] ?? []).map(Number);
    if (open.length && deps.catalog) {
      const catalog = deps.catalog;
      const price = (u: Parameters<typeof priceFor>[1]) => priceFor(getModel(catalog, job.model), u).cost;
      for (const n of open) {
        const closed = await closeAbandonedAttempt({ store, jobId: task.jobId, itemId: task.itemId, price, now: deps.now }, n);
        if (closed && job.limits.maxCost !== null) await deps.coord.settleSpend(job.jobId, closed.reservedCost, closed.countedCost);
      }
      attemptKeys = await store.listKeys(keys.item(task.jobId, task.itemId, "attempts/"));
    }
    const numbers = attemptKeys.flatMap((k) => /\/(\d+)\.json$/.exec(k)?.[1] ?? []).map(Number);
    const rec = numbers.length ? await store.getJson<{ error: { kind: ErrorCode; message: string } | null }>(keys.attempt(task.jobId, task.itemId, Math.max(...numbers))) : undefined;
    const last = rec?.error ?? undefined;
    const result = resultWithoutCall(job, task.itemId, {
      status: "failed",
      attempts: Math.max(job.maxReceives, ...numbers),
      error: {
        kind: "worker_crashed",
        message: `no result after ${job.maxReceives} deliveries; the worker died or timed out` + (last ? `; last error: ${last.kind}: ${last.message}` : ""),
      },
      at: new Date((deps.now ?? Date.now)()).toISOString(),
    });
    // What its attempts were billed (or counted) belongs to the item's cost all the same.
    const spent = numbers.length ? await earlierAttempts(store, task.jobId, task.itemId, Math.max(...numbers) + 1) : null;
    const currency = job.currency;
    const paid = spent && spent.cost > 0 ? { usage: spent.usage, cost: spent.cost, currency, costUsd: currency === "USD" ? spent.cost : null, ...(spent.estimated ? { usageEstimated: true } : {}) } : {};
    await store.putJsonIfAbsent(resultKey, { ...result, ...paid });
  }
  const written = await store.getJson<{ status: "succeeded" | "failed" | "skipped" }>(resultKey);
  await recordFinished(deps, store, job, task.itemId, written?.status ?? "failed");
}

/** Tasks that exhausted their deliveries land in the DLQ; record each as failed with its last error. */
export function createDeadLetterHandler(deps: Lazy<DeadTaskDeps>) {
  const get = once(deps);
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const d = await get();
    return eachRecord(event, d.log, (r) => recordDeadTask(d, parseTaskMessage(r.body), receiveCount(r)));
  };
}
