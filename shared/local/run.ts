import { applyOverrides } from "../submit/overrides.ts";
import type { JobOverrides } from "../submit/select.ts";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { keys, ObjectStore } from "../run/store.ts";
import { sendTasks, type TaskMessage } from "../run/queue.ts";
import { cancelJob, retryJob, type CancelOutcome, type RetryOptions, type RetryRecord } from "../run/control.ts";
import { createWorkerDeps } from "../worker/deps.ts";
import { loadJobForSubmit, submitLoadedJob, type LoadedJob } from "../submit/load.ts";
import { LongdocError } from "../errors.ts";
import { createDeadLetterHandler } from "../worker/dead.ts";
import { createWorkerHandler } from "../worker/handlers.ts";
import type { WorkerTiming } from "../worker/context.ts";
import { createCoordinator } from "../run/coord.ts";
import { describeReplacement, startFleet } from "./fleet.ts";
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { finishedItemIds, inBatches, readResults, resultWithoutCall, type ItemResult, type Manifest } from "../run/manifest.ts";
import { writeFinalManifest } from "../run/finish.ts";
import { createFinalizeHandler, queueFinalizer } from "../run/finalize.ts";
import { notifierFromSettings, type NotifyRecord } from "../run/notify.ts";
import type { Coordinator } from "../run/coord.ts";
import type { ModelClient } from "../model/client.ts";
import { deployment, type Settings } from "../settings.ts";
import { startSimulator } from "../sim/index.ts";
import { mirrorRun } from "../run/mirror.ts";
import { queueDepth } from "./inspect.ts";
import { runPoller } from "./poller.ts";
import { startLocalStack, type LocalStack } from "./stack.ts";
import { cancelJobBatches, itemsAwaitingBatch, startLocalBatchPolling } from "./batch-poller.ts";
import { createBatchApi } from "../batch/api.ts";

export interface Progress {
  jobId: string;
  total: number;
  finished: number;
  elapsedMs: number;
}

/** What drives the workers of a local run. */
interface WorkerOptions {
  /** Runs are mirrored to <outDir>/<jobId>/. */
  outDir: string;
  /** Concurrent local workers; `run` defaults to the job's limits.concurrency. */
  workers: number;
  /** Read once at the edge (loadSettings): endpoint, catalog. */
  settings: Settings;
  log: Log;
  /** Use this model client instead of one built from the settings (tests inject faults here); the workers then run in this process. */
  model?: ModelClient;
  /**
   * Run the workers in this process, not as a fleet of processes: for tests whose subject is what
   * an item produces rather than the fleet (each worker process costs about a second of CPU to start).
   */
  inProcess?: boolean;
  /** Workers that must not call the model (cancel drains the queue). */
  noModel?: boolean;
  /** The workers' clocks (backoff, lease), e.g. shorter in tests. */
  timing?: Partial<WorkerTiming>;
  onProgress?: (p: Progress) => void;
  /** Give up (return with what is there) after this long. */
  timeoutMs?: number;
  /** Ctrl-C: stop the workers and return with what is there; running the job file again resumes. */
  signal?: AbortSignal;
  /** Things the user should hear about while the run goes on (a worker process replaced). */
  onNotice?: (message: string) => void;
  /** `mode: batch`: how often the job's batches are polled (default every 2 s). */
  batchPollMs?: number;
}

export interface LocalRunOptions extends Omit<WorkerOptions, "workers"> {
  jobFile: string;
  /** Defaults to the job's limits.concurrency, else deployment.local.workers. */
  workers?: number;
  /** Keep the emulator's state here (SQLite); in memory when unset. */
  dataDir?: string;
  /** An already running stack (tests); otherwise one is started and stopped. */
  stack?: LocalStack;
  onSubmitted?: (job: JobRecord, ctx: { stack: LocalStack; baseURL: string; resumed: boolean }) => void | Promise<void>;
  /** Start a new job even when this job file's last job on this state is unfinished (default: resume it). */
  fresh?: boolean;
  /** Accept documents outside the job file's folder and the current repository (`--allow-outside`). */
  allowOutside?: boolean;
  /** This run's `--limit`, `--only`, `--model` and `--max-cost`. */
  overrides?: JobOverrides;
}

export interface LocalRunResult {
  job: JobRecord;
  manifest: Manifest;
  outDir: string;
  usedSimulator: boolean;
  notify?: NotifyRecord;
}

/** The model endpoint a local run's workers call: the real one when a key is set, else a simulator started for the run. */
export interface LocalEndpoint {
  apiKey: string;
  baseURL: string;
  usedSimulator: boolean;
  stop(): Promise<void>;
}

/** The configured endpoint; without DASHSCOPE_API_KEY, starts the Qwen simulator on a loopback port. */
export async function openLocalEndpoint(settings: Settings): Promise<LocalEndpoint> {
  const { endpoint } = settings;
  if (endpoint.apiKey) return { apiKey: endpoint.apiKey, baseURL: endpoint.baseURL!, usedSimulator: false, stop: async () => {} };
  const sim = await startSimulator({ port: 0 });
  return { apiKey: "sk-local-simulator", baseURL: sim.baseURL, usedSimulator: true, stop: () => sim.stop() };
}

/**
 * A job run end to end on this machine: the embedded SQS/S3 emulator, the same submit and worker
 * code as on AWS, a poller standing in for Lambda, and the Qwen simulator unless a key is set.
 * It is the two phases below: submit, then drive.
 */
export async function runLocalJob(o: LocalRunOptions): Promise<LocalRunResult> {
  const loaded = applyOverrides(await loadJobForSubmit(o.jobFile, o.settings.catalog, { allowOutside: o.allowOutside }), o.overrides ?? {});
  if (loaded.spec.documents.some((d) => "s3" in d)) {
    throw new LongdocError("usage", `${o.jobFile}: s3 document sources need a deployed stack (use 'longdoc submit'); local runs read path: sources`);
  }

  const stack = o.stack ?? (await startLocalStack({ dataDir: o.dataDir, command: `longdoc run ${o.jobFile}` }));
  let endpoint: LocalEndpoint | undefined;
  let workers: Promise<Workers> | undefined;
  try {
    endpoint = await openLocalEndpoint(o.settings);
    // Each worker is a process (~150 MB, ~2 s to start): locally the default stays small, and never
    // more than the job has items; --workers sets more.
    const count = o.workers ?? Math.min(loaded.spec.limits.concurrency ?? deployment.local.workers, deployment.local.workers, itemsAtMost(loaded));
    // The worker processes start while the documents upload and the tasks are queued.
    workers = startWorkers({ ...o, workers: count, stack }, endpoint);
    const store = new ObjectStore(stack.s3, stack.bucket);
    // A run with overrides is a different job from the file's own: it resumes only its own kind.
    const hash = createHash("sha256").update(path.resolve(o.jobFile)).update(await readFile(o.jobFile));
    if (loaded.overrides) hash.update(JSON.stringify(loaded.overrides));
    const pointer = keys.localJob(hash.digest("hex").slice(0, 16));
    if (!o.fresh) await refuseAfterCancel(store, pointer, o.jobFile, o.dataDir);
    const unfinished = o.fresh ? undefined : await unfinishedJob(store, pointer);
    let job: JobRecord;
    if (unfinished) {
      // The same job file on the same state: resume the job an interrupted run left, never a second job.
      job = unfinished;
      await requeueUnfinished(store, stack, job);
    } else {
      job = await submitLoadedJob(
        { s3: stack.s3, sqs: stack.sqs, bucket: stack.bucket, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives, coord: createCoordinator(stack.dynamo.client, stack.dynamo.table), checkCostCap: true },
        loaded,
      );
      await store.putJson(pointer, { jobId: job.jobId, jobFile: path.resolve(o.jobFile), at: new Date().toISOString() });
    }
    await o.onSubmitted?.(job, { stack, baseURL: endpoint.baseURL, resumed: unfinished !== undefined });
    const driven = await driveLocalRun({ ...o, workers: count, stack, job, endpoint, running: workers });
    return { job, ...driven };
  } finally {
    await (await workers?.catch(() => undefined))?.stop();
    await endpoint?.stop();
    if (!o.stack) await stack.stop();
  }
}

/** How many items the job can have at most, known before its documents are measured. */
function itemsAtMost(loaded: LoadedJob): number {
  const items = loaded.batch ? loaded.batch.requests.length : loaded.spec.packing === "all-documents" ? 1 : loaded.localDocuments.length;
  return Math.max(1, Math.min(items, loaded.select?.limit ?? Infinity));
}

/** A job of this state whose manifest still says `running`. */
async function interruptedJob(store: ObjectStore, jobId: string): Promise<JobRecord | undefined> {
  const manifest = await store.getJson<Manifest>(keys.manifest(jobId));
  return manifest?.status === "running" ? store.getJson<JobRecord>(keys.job(jobId)) : undefined;
}

/**
 * A job file whose last job on this state was cancelled is not started again silently: a new
 * job would pay again for every item that had succeeded. `retry` runs only the skipped and
 * failed items; `--new` starts a new job on purpose.
 */
async function refuseAfterCancel(store: ObjectStore, pointer: string, jobFile: string, dataDir: string | undefined): Promise<void> {
  const last = await store.getJson<{ jobId: string }>(pointer);
  if (!last) return;
  const manifest = await store.getJson<Manifest>(keys.manifest(last.jobId));
  if (manifest?.status !== "cancelled") return;
  const state = dataDir ? ` --state ${dataDir}` : "";
  const c = manifest.counts;
  throw new LongdocError(
    "usage",
    `the last job of ${jobFile} on this state, ${last.jobId}, was cancelled (${c.succeeded} of ${c.total} item(s) succeeded). ` +
      `To finish it without paying again for what succeeded: longdoc retry ${last.jobId}${state}. To start a new job and run every item again: longdoc run ${jobFile}${state} --new`,
  );
}

/** The job this job file last started on this state, when it has not finished. */
async function unfinishedJob(store: ObjectStore, pointer: string): Promise<JobRecord | undefined> {
  const last = await store.getJson<{ jobId: string }>(pointer);
  return last ? interruptedJob(store, last.jobId) : undefined;
}

/**
 * Sends again the tasks of the items without a result. An interrupted run may have lost some
 * (a submit cut short, a queue state older than the run); a duplicate costs nothing, since the
 * worker checks the result and the item's claim before any call.
 */
async function requeueUnfinished(store: ObjectStore, stack: LocalStack, job: JobRecord): Promise<void> {
  const done = await finishedItemIds(store, job.jobId);
  // Items still in an open batch get their task from the batch poller.
  for (const id of await itemsAwaitingBatch(store, job)) done.add(id);
  const tasks: TaskMessage[] = job.items
    .filter((i) => !done.has(i.id))
    .map((i) => ({ v: 1, jobId: job.jobId, itemId: i.id, bucket: stack.bucket, documents: i.documents.map((d) => d.uri) }));
  await sendTasks(stack.sqs, stack.queueUrl, tasks);
}

export interface DriveOptions extends WorkerOptions {
  stack: LocalStack;
  /** The job to wait for; the pollers take any task off the queue (an earlier run's too). */
  job: JobRecord;
  /** The model endpoint; opened from the settings (and closed) when unset. */
  endpoint?: Omit<LocalEndpoint, "stop">;
  /** Workers already starting (run starts them while it submits); started here when unset. */
  running?: Promise<Workers>;
}

export interface DriveResult {
  manifest: Manifest;
  outDir: string;
  usedSimulator: boolean;
  /** notify.json as the workers left it when they stopped: a webhook delivery may still be `pending`. */
  notify?: NotifyRecord;
}


/**
 * Runs the workers (a Lambda-style poller per worker on the task queue, one on the DLQ) until
 * the job's manifest is no longer `running`, drains what is left in the queue (a duplicate
 * delivery, an earlier run's tasks) for a short while, then mirrors the run to <outDir>/<jobId>/.
 */
export async function driveLocalRun(o: DriveOptions): Promise<DriveResult> {
  const { stack, job } = o;
  const opened = o.endpoint ? undefined : await openLocalEndpoint(o.settings);
  const endpoint = o.endpoint ?? opened!;
  const workers = await (o.running ?? startWorkers(o, endpoint));
  const batches = startLocalBatchPolling({ stack, job, endpoint, catalog: o.settings.catalog, log: o.log, everyMs: o.batchPollMs });
  try {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const startedAt = Date.now();
    let manifest: Manifest | undefined;
    let drainUntil: number | undefined;
    for (;;) {
      // The manifest turns final when the last item is counted in the coordination table.
      manifest = await store.getJson<Manifest>(keys.manifest(job.jobId));
      const final = manifest !== undefined && manifest.status !== "running";
      if (o.onProgress) {
        const finished = final ? job.items.length : (await finishedItemIds(store, job.jobId)).size;
        o.onProgress({ jobId: job.jobId, total: job.items.length, finished, elapsedMs: Date.now() - startedAt });
      }
      if (final) {
        // Drain what is still queued (a duplicate delivery, tasks of an earlier interrupted run)
        // so nothing is left behind, but never wait long for it.
        drainUntil ??= Date.now() + 3 * deployment.local.claimLeaseS * 1000;
        if ((await queueDepth(stack)) === 0 || Date.now() > drainUntil) break;
      }
      if (o.timeoutMs !== undefined && Date.now() - startedAt > o.timeoutMs) break;
      if (o.signal?.aborted) break;
      const failure = workers.failure?.();
      if (failure) throw new LongdocError("internal", `the local workers cannot run: ${failure.message}; the job is kept, run the job file again to resume`);
      // Progress lists the job's items: poll less often as jobs grow.
      await new Promise((r) => setTimeout(r, Math.min(2000, Math.max(200, job.items.length))));
    }
    await workers.stop();
    const dir = await mirrorRun(store, job.jobId, o.outDir);
    const notify = await store.getJson<NotifyRecord>(keys.notify(job.jobId));
    return { manifest: manifest!, outDir: dir, usedSimulator: endpoint.usedSimulator, ...(notify && { notify }) };
  } finally {
    await batches.stop();
    await workers.stop();
    await opened?.stop();
  }
}

/**
 * The workers of a local run: separate processes (the fleet), as Lambda runs isolated containers.
 * A test that injects a model client (faults, counting) or asks for it runs them in this process
 * instead; no fleet property (quota, claims, ledger) rests on that mode.
 */
interface Workers {
  stop(): Promise<void>;
  /** Set when the workers cannot go on (they die as they start): the run ends with it rather than wait. */
  failure?(): Error | undefined;
}

async function startWorkers(o: Omit<DriveOptions, "job">, endpoint: Omit<LocalEndpoint, "stop">): Promise<Workers> {
  const { stack } = o;
  if (!o.model && !(o.inProcess && !o.noModel)) {
    const fleet = await startFleet({
      stack,
      workers: o.workers,
      settings: o.settings,
      endpoint,
      log: o.log,
      noModel: o.noModel,
      timing: o.timing,
      // The fault suite's AWS faults reach a plain run's workers when its environment sets them.
      ...(o.settings.testAwsFaults && { awsFaults: o.settings.testAwsFaults }),
      onReplaced: (r) => o.onNotice?.(describeReplacement(r, deployment.workerMemoryMb)),
    });
    let stopped: Promise<void> | undefined;
    return { stop: () => (stopped ??= fleet.stop()), failure: () => fleet.failure() };
  }
  const abort = new AbortController();
  const deps = createWorkerDeps({
    s3: stack.s3,
    sqs: stack.sqs,
    queueUrl: stack.queueUrl,
    coord: createCoordinator(stack.dynamo.client, stack.dynamo.table),
    catalog: o.settings.catalog,
    log: o.log,
    apiKey: endpoint.apiKey,
    baseURL: endpoint.baseURL,
    model: o.model,
    timing: { leaseMs: deployment.local.claimLeaseS * 1000, ...o.timing },
    notifier: notifierFromSettings({ ...o.settings.notify, topicArn: stack.topicArn }, stack.sns, o.log),
    finalizer: queueFinalizer(stack.sqs, stack.finalizeUrl),
  });
  const worker = createWorkerHandler(() => deps);
  const deadLetters = createDeadLetterHandler(() => ({ s3: stack.s3, coord: deps.coord, log: o.log, notifier: deps.notifier, finalizer: deps.finalizer }));
  const finalize = createFinalizeHandler(async () => ({ s3: stack.s3, coord: deps.coord, notifier: deps.notifier, log: o.log, sqs: stack.sqs, queueUrl: stack.finalizeUrl, leaseS: deployment.local.claimLeaseS }));
  const queueArn = async (url: string) => (await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
  const common = { sqs: stack.sqs, waitTimeS: deployment.local.pollWaitS, functionTimeoutMs: deployment.workerTimeoutS * 1000, signal: abort.signal, onError: (e: unknown) => o.log.error({ error: String(e) }, "poller error") };
  const pollers = [
    ...Array.from({ length: Math.max(1, o.workers) }, async () =>
      runPoller({ ...common, queueUrl: stack.queueUrl, queueArn: await queueArn(stack.queueUrl), handler: worker, batchSize: deployment.workerBatchSize }),
    ),
    runPoller({ ...common, queueUrl: stack.dlqUrl, queueArn: await queueArn(stack.dlqUrl), handler: deadLetters, batchSize: 10 }),
    runPoller({ ...common, queueUrl: stack.finalizeUrl, queueArn: await queueArn(stack.finalizeUrl), handler: finalize, batchSize: 1 }),
  ];
  return {
    async stop() {
      abort.abort();
      await Promise.allSettled(pollers);
    },
  };
}

/**
 * Starts the emulator on a local state that `longdoc run` left (`--state`); a clear input error,
 * without creating anything, when the folder holds no state.
 */
export async function openLocalStack(dataDir: string): Promise<LocalStack> {
  if (!existsSync(path.join(dataDir, "fauxqs.db"))) {
    throw new LongdocError(
      "job_invalid",
      `no local runs in '${dataDir}' (no emulator state there): run a job with 'longdoc run' first, or pass --state with the directory it used`,
    );
  }
  return startLocalStack({ dataDir });
}

/** Errors that name the emulator's bucket name the local state folder instead, as `status` does. */
function inLocalState(e: unknown, stack: LocalStack, dataDir: string | undefined): unknown {
  if (!LongdocError.is(e) || dataDir === undefined) return e;
  const label = `s3://${stack.bucket}`;
  return e.message.includes(label) ? new LongdocError(e.code, e.message.replace(label, `the local state '${dataDir}'`), { cause: e }) : e;
}

export interface LocalControlOptions extends WorkerOptions {
  jobId: string;
  /** The local state `longdoc run` kept (`--state`). */
  dataDir?: string;
  /** An already running stack (tests). */
  stack?: LocalStack;
}

export type LocalRetryResult =
  | { requeued: false; resumed?: boolean; job: JobRecord; manifest: Manifest }
  | { requeued: true; job: JobRecord; record: RetryRecord; manifest: Manifest; outDir: string; usedSimulator: boolean };

/**
 * `longdoc retry` on a local run: re-queues the failed and skipped items (control.ts `retryJob`)
 * and drives the workers to the end of the run as `run` does. `onRequeued` runs before the workers start.
 */
export async function retryLocalJob(
  o: LocalControlOptions & RetryOptions & { onRequeued?: (record: RetryRecord, job: JobRecord) => void; onResumed?: (job: JobRecord) => void },
): Promise<LocalRetryResult> {
  const dataDir = o.dataDir ?? ".longdoc/state";
  const stack = o.stack ?? (await openLocalStack(dataDir));
  try {
    const store = new ObjectStore(stack.s3, stack.bucket);
    // This process owns the state, so a job still `running` here was interrupted (Ctrl-C, kill):
    // retry resumes it rather than refusing.
    const interrupted = o.stack ? undefined : await interruptedJob(store, o.jobId);
    if (interrupted) {
      await requeueUnfinished(store, stack, interrupted);
      o.onResumed?.(interrupted);
      const driven = await driveLocalRun({ ...o, stack, job: interrupted });
      return { requeued: false, resumed: true, job: interrupted, manifest: driven.manifest };
    }
    const out = await retryJob({ store, sqs: stack.sqs, queueUrl: stack.queueUrl, coord: createCoordinator(stack.dynamo.client, stack.dynamo.table) }, o.jobId, { maxOutputTokens: o.maxOutputTokens }).catch((e: unknown) => {
      throw inLocalState(e, stack, o.stack ? undefined : dataDir);
    });
    if (!out.requeued) return out;
    o.onRequeued?.(out.record, out.job);
    // No more worker processes than items to retry: each costs a process start.
    const driven = await driveLocalRun({ ...o, workers: Math.min(o.workers, Math.max(1, out.record.items.length)), stack, job: out.job });
    return { requeued: true, job: out.job, record: out.record, ...driven };
  } finally {
    if (!o.stack) await stack.stop();
  }
}

export type LocalCancelResult =
  | { state: "finished"; job: JobRecord; manifest: Manifest }
  | { state: "cancelled"; job: JobRecord; pending: string[]; alreadyCancelled: boolean; manifest: Manifest; outDir: string; skipped: string[] };

/**
 * Records every item without a result skipped (cancelled), 64 writes at a time, and returns
 * every result of the job for the final manifest (the ones read plus the ones written), so the
 * manifest needs no second read of thousands of objects.
 *
 * The items are not counted finished in the coordination table: no worker runs while this
 * process owns the state, the manifest is written here rather than by a last worker, and an
 * uncounted item cannot push a later count (a retry's) to an early last:true.
 */
async function skipUnfinished(store: ObjectStore, job: JobRecord, onProgress: (finished: number) => void): Promise<{ skipped: string[]; results: Map<string, ItemResult>; written: Map<string, ItemResult> }> {
  const results = await readResults(store, job);
  const left = job.items.filter((i) => !results.has(i.id));
  const at = new Date().toISOString();
  const written = new Map<string, ItemResult>();
  let finished = results.size;
  await inBatches(left, 64, async (item) => {
    const result = resultWithoutCall(job, item.id, { status: "skipped", attempts: 0, error: { kind: "cancelled", message: "the job was cancelled before this item ran" }, at });
    const key = keys.item(job.jobId, item.id, "result.json");
    // Absent-only: a result written meanwhile (by an earlier owner's last write) is kept.
    if (await store.putJsonIfAbsent(key, result)) {
      results.set(item.id, result);
      written.set(key, result);
    } else results.set(item.id, (await store.getJson<ItemResult>(key)) ?? result);
    if (++finished % 500 === 0) onProgress(finished);
  });
  onProgress(job.items.length);
  return { skipped: left.map((i) => i.id), results, written };
}

/** Deletes the job's tasks from the queue, ten at a time over parallel receivers; others' tasks are handed straight back. */
async function removeQueuedTasks(stack: LocalStack, jobId: string): Promise<void> {
  const foreign = new Set<string>();
  const receiver = async () => {
    for (;;) {
      const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 30 }));
      const messages = got.Messages ?? [];
      const ours = messages.filter((m) => taskJobId(m.Body) === jobId);
      const others = messages.filter((m) => taskJobId(m.Body) !== jobId);
      if (ours.length) await stack.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: stack.queueUrl, Entries: ours.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
      if (others.length) {
        await stack.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: stack.queueUrl, Entries: others.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })) }));
      }
      // Done when the queue is empty, or holds only other jobs' tasks seen already.
      if (ours.length === 0 && others.every((m) => foreign.has(m.MessageId!))) return;
      for (const m of others) foreign.add(m.MessageId!);
    }
  };
  await Promise.all(Array.from({ length: 4 }, receiver));
}

const taskJobId = (body: string | undefined): string | undefined => {
  try {
    return (JSON.parse(body ?? "") as { jobId?: string }).jobId;
  } catch {
    return undefined;
  }
};

/**
 * `longdoc cancel` on a local run: writes the cancel marker, then runs the workers until every
 * queued item of the job ended `skipped` (kind `cancelled`) and the manifest is final. Items
 * whose task is gone (an interrupted run lost it) are recorded skipped once both queues are empty.
 */
export async function cancelLocalJob(o: LocalControlOptions & { onMarked?: (c: Extract<CancelOutcome, { state: "cancelling" }>) => void }): Promise<LocalCancelResult> {
  const dataDir = o.dataDir ?? ".longdoc/state";
  const stack = o.stack ?? (await openLocalStack(dataDir));
  try {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const c = await cancelJob({ store }, o.jobId).catch((e: unknown) => {
      throw inLocalState(e, stack, o.stack ? undefined : dataDir);
    });
    if (c.state === "finished") return c;
    // A real endpoint's batches are cancelled there (a simulator's ended with the run that started it).
    if (o.settings.endpoint.apiKey) await cancelJobBatches(store, c.job, createBatchApi({ apiKey: o.settings.endpoint.apiKey, baseURL: o.settings.endpoint.baseURL! }), o.log);
    o.onMarked?.(c);
    // This process owns the state, so no worker is running: every unfinished item ends skipped
    // here, many at a time, without a delivery each; then the job's tasks leave the queue.
    const started = Date.now();
    const { skipped, results, written } = await skipUnfinished(store, c.job, (finished) => o.onProgress?.({ jobId: c.job.jobId, total: c.job.items.length, finished, elapsedMs: Date.now() - started }));
    await removeQueuedTasks(stack, c.job.jobId);
    const manifest = await writeFinalManifest(store, c.job, results, notifierFromSettings({ ...o.settings.notify, topicArn: stack.topicArn }, stack.sns, o.log));
    const outDir = await mirrorRun(store, c.job.jobId, o.outDir, written);
    return { state: "cancelled", job: c.job, pending: c.pending, alreadyCancelled: c.alreadyCancelled, manifest, outDir, skipped };
  } finally {
    if (!o.stack) await stack.stop();
  }
}
