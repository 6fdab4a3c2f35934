import type { SQSClient } from "@aws-sdk/client-sqs";
import { sendTasks, type TaskMessage } from "./queue.ts";
import { keys, type ObjectStore } from "./store.ts";
import { LongdocError } from "../errors.ts";
import type { JobRecord } from "../job/record.ts";
import { buildManifest, currentManifest, inBatches, readResults, type ItemResult, type ItemStatus, type Manifest } from "./manifest.ts";
import type { Coordinator } from "./coord.ts";
import { readJob } from "./progress.ts";

/**
 * Retry and cancel: what `longdoc retry` and `longdoc cancel` do to a run's objects and its
 * queue. Written against the ObjectStore port and an SQS client, so they work the same on the
 * local emulator and on a deployed stack; the local runtime (local/run.ts) then drives the
 * workers to the end.
 */
export interface ControlDeps {
  store: ObjectStore;
  sqs: SQSClient;
  queueUrl: string;
  /** The coordination table: re-queued items must no longer count as finished (nor hold a done claim). */
  coord: Coordinator;
  now?: () => Date;
}

/** runs/<jobId>/retries/<n>.json: what retry round n re-queued and what it moved aside. */
export interface RetryRecord {
  version: 1;
  jobId: string;
  round: number;
  at: string;
  items: {
    id: string;
    /** The result the item had before this round (status, deliveries, error). */
    status: ItemStatus;
    attempts: number;
    error: { kind: string; message: string } | null;
    /** Where its earlier files went: `items/<id>/previous/<round>/` (result.json, attempts/, answers...). */
    previous: string;
  }[];
  /** Markers this round took away so the workers run again (their contents kept here). */
  removed: { halt?: unknown; cancel?: unknown };
  /** `--max-output-tokens`: the answer cap this round's calls use instead of the job's maxOutputTokens. */
  maxOutputTokens?: number;
}

export interface RetryOptions {
  /**
   * Re-run with this answer cap (it must be larger than the job's maxOutputTokens). Items whose
   * answer was cut at the cap and kept (`output.onTruncated: keep`) are re-queued too.
   */
  maxOutputTokens?: number;
}

export type RetryOutcome =
  | { requeued: false; job: JobRecord; manifest: Manifest }
  | { requeued: true; job: JobRecord; manifest: Manifest; record: RetryRecord };


/**
 * Re-queues the items of a finished run that ended `failed` or `skipped` (with
 * `maxOutputTokens`, also those whose answer was cut at the cap and kept, all with the new cap):
 *
 * 1. records the round in `runs/<jobId>/retries/<n>.json` (items, their earlier status,
 *    deliveries and error, and any halt or cancel marker it removes);
 * 2. moves each such item's files (result.json, attempts/, answer, reasoning...) to
 *    `items/<id>/previous/<n>/` (copied, then the originals removed, result.json last), so the
 *    worker no longer sees a result and nothing earlier is lost;
 * 3. marks them unfinished in the coordination table (count, claims and attempts reset) and
 *    removes the halt and cancel markers, so the workers run again;
 * 4. rewrites the manifest from the results that remain (status `running`);
 * 5. sends one task per item, the same message submit sends.
 *
 * `attempts` in the new result counts the model attempts of this round, so it starts again at 1;
 * the earlier count is in the retry record and in the moved result.json.
 *
 * A run still going (items without a result) is refused: its tasks are still queued or in flight.
 */
export async function retryJob(deps: ControlDeps, jobId: string, opts: RetryOptions = {}): Promise<RetryOutcome> {
  const { store } = deps;
  const job = await readJob(store, jobId);
  const cap = opts.maxOutputTokens;
  if (cap !== undefined && cap <= job.spec.maxOutputTokens) {
    throw new LongdocError("usage", `--max-output-tokens ${cap} is not larger than job ${jobId}'s maxOutputTokens (${job.spec.maxOutputTokens}); give a larger cap`);
  }
  const results = await readResults(store, job);
  const pending = job.items.filter((i) => !results.has(i.id));
  if (pending.length > 0) {
    throw new LongdocError(
      "job_invalid",
      `job ${jobId} is still running: ${pending.length} of ${job.items.length} item(s) have no result yet, and their tasks are queued or in flight. ` +
        `Retry re-queues the failed and skipped items of a finished run: wait for it ('longdoc status ${jobId} --watch'), or stop it first ('longdoc cancel ${jobId}')`,
    );
  }
  const again = job.items.filter((i) => {
    const r = results.get(i.id)!;
    return r.status === "failed" || r.status === "skipped" || (cap !== undefined && r.answerTruncated === true);
  });
  if (again.length === 0) return { requeued: false, job, manifest: await currentManifest(store, job, results) };

  const round = (await store.listKeys(keys.retriesPrefix(jobId))).filter((k) => /\/\d+\.json$/.test(k)).length + 1;
  const [halt, cancel] = await Promise.all([store.getJson<unknown>(keys.halt(jobId)), store.getJson<unknown>(keys.cancel(jobId))]);
  const record: RetryRecord = {
    version: 1,
    jobId,
    round,
    at: (deps.now ?? (() => new Date()))().toISOString(),
    items: again.map((i) => {
      const r = results.get(i.id)!;
      return { id: i.id, status: r.status, attempts: r.attempts, error: r.error, previous: keys.previous(i.id, round) };
    }),
    removed: { ...(halt !== undefined && { halt }), ...(cancel !== undefined && { cancel }) },
    ...(cap !== undefined ? { maxOutputTokens: cap } : {}),
  };
  await store.putJson(keys.retry(jobId, round), record);

  await inBatches(again, 8, (item) => moveItemAside(store, jobId, item.id, round));
  await deps.coord.reopenItems(jobId, again.map((i) => i.id));
  for (const key of [keys.halt(jobId), keys.cancel(jobId)]) await store.delete(key);
  for (const item of again) results.delete(item.id);
  const manifest = buildManifest(job, results);
  await store.putJson(keys.manifest(jobId), manifest);

  const tasks: TaskMessage[] = again.map((item) => ({
    v: 1,
    jobId,
    itemId: item.id,
    bucket: store.bucket,
    documents: item.documents.map((d) => d.uri),
    ...(cap !== undefined ? { maxOutputTokens: cap } : {}),
  }));
  await sendTasks(deps.sqs, deps.queueUrl, tasks);
  return { requeued: true, job, manifest, record };
}

/** Moves items/<id>/* (not earlier rounds' previous/) to items/<id>/previous/<round>/, result.json last. */
async function moveItemAside(store: ObjectStore, jobId: string, itemId: string, round: number): Promise<void> {
  const prefix = keys.item(jobId, itemId, "");
  const current = (await store.listKeys(prefix)).filter((k) => !k.slice(prefix.length).startsWith("previous/"));
  const target = keys.run(jobId) + keys.previous(itemId, round);
  await Promise.all(current.map((k) => store.copy(k, target + k.slice(prefix.length))));
  const resultKey = keys.item(jobId, itemId, "result.json");
  await Promise.all(current.filter((k) => k !== resultKey).map((k) => store.delete(k)));
  await store.delete(resultKey);
}

export type CancelOutcome =
  /** Nothing left to stop: every item has a result. */
  | { state: "finished"; job: JobRecord; manifest: Manifest }
  /** The marker is written (or was already there); `pending` items will end skipped. */
  | { state: "cancelling"; job: JobRecord; pending: string[]; alreadyCancelled: boolean };

/**
 * Writes runs/<jobId>/cancel.json. Workers that see it record each item they take off the queue
 * as `skipped` (kind `cancelled`) without calling the model; items already answered keep their
 * result. A run whose items all have a result is left as it is.
 */
export async function cancelJob(deps: Pick<ControlDeps, "store" | "now">, jobId: string): Promise<CancelOutcome> {
  const { store } = deps;
  const job = await readJob(store, jobId);
  const results = await readResults(store, job);
  const pending = job.items.filter((i) => !results.has(i.id)).map((i) => i.id);
  if (pending.length === 0) return { state: "finished", job, manifest: await currentManifest(store, job, results) };
  const alreadyCancelled = await store.exists(keys.cancel(jobId));
  if (!alreadyCancelled) {
    await store.putJson(keys.cancel(jobId), { at: (deps.now ?? (() => new Date()))().toISOString(), by: "longdoc cancel", pendingItems: pending.length });
  }
  return { state: "cancelling", job, pending, alreadyCancelled };
}

