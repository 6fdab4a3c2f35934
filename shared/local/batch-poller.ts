// The local runtime's stand-in for the scheduled poller: a pass over the job's batches every few seconds while any is open.
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { createCoordinator } from "../run/coord.ts";
import { ObjectStore } from "../run/store.ts";
import type { Catalog } from "../model/catalog.ts";
import type { LocalStack } from "./stack.ts";
import { createBatchApi, type BatchApi } from "../batch/api.ts";
import { pollJobBatches } from "../batch/poll.ts";
import { batchKeys, readBatchRecords, TERMINAL_STATES } from "../run/batch-records.ts";

/** How often a local run polls its batches (the deployed poller runs every few minutes). */
export const LOCAL_BATCH_POLL_MS = 2_000;

export function startLocalBatchPolling(o: { stack: LocalStack; job: JobRecord; endpoint: { apiKey: string; baseURL: string }; catalog: Catalog; log: Log; everyMs?: number }): { stop(): Promise<void> } {
  if (o.job.spec.mode !== "batch") return { stop: async () => {} };
  const store = new ObjectStore(o.stack.s3, o.stack.bucket);
  const deps = { store, sqs: o.stack.sqs, queueUrl: o.stack.queueUrl, coord: createCoordinator(o.stack.dynamo.client, o.stack.dynamo.table), catalog: o.catalog, api: createBatchApi(o.endpoint), log: o.log };
  let stopped = false;
  let wake: (() => void) | null = null;
  const loop = (async () => {
    while (!stopped) {
      try {
        if (!(await store.exists(batchKeys.open(o.job.jobId)))) return;
        const { open } = await pollJobBatches(deps, o.job.jobId);
        if (open === 0) return;
      } catch (e) {
        o.log.warn({ jobId: o.job.jobId, error: e instanceof Error ? e.message : String(e) }, "batch poll failed; trying again");
      }
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, o.everyMs ?? LOCAL_BATCH_POLL_MS).unref();
      });
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

/** Items whose batch is not applied yet: a resumed run must not queue them (the poller will). */
export async function itemsAwaitingBatch(store: ObjectStore, job: JobRecord): Promise<Set<string>> {
  if (job.spec.mode !== "batch") return new Set();
  return new Set((await readBatchRecords(store, job.jobId)).filter((r) => !r.appliedAt).flatMap((r) => r.items));
}

/**
 * `longdoc cancel` of a batch job: every open provider batch is cancelled (requests it answered
 * already are billed, and their answers are kept when the batch is applied). Errors are logged:
 * the scheduled poller also cancels a cancelled job's batches.
 */
export async function cancelJobBatches(store: ObjectStore, job: JobRecord, api: BatchApi, log: Log): Promise<number> {
  if (job.spec.mode !== "batch") return 0;
  let cancelled = 0;
  for (const r of await readBatchRecords(store, job.jobId)) {
    if (!r.batchId || r.appliedAt || TERMINAL_STATES.has(r.state) || r.state === "cancelling") continue;
    try {
      const b = await api.cancelBatch(r.batchId);
      await store.putJson(batchKeys.record(job.jobId, r.index), { ...r, state: b.status, updatedAt: new Date().toISOString() });
      cancelled++;
    } catch (e) {
      log.warn({ jobId: job.jobId, batchId: r.batchId, error: e instanceof Error ? e.message : String(e) }, "batch not cancelled");
    }
  }
  return cancelled;
}
