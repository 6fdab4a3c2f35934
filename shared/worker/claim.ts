/**
 * The first step of a delivery: take the item in the coordination store, or learn why not (it is
 * finished, or another delivery holds it). A delivery that takes over from a worker that died
 * closes that worker's attempt first, counting what it streamed.
 */
import type { JobRecord } from "../job/record.ts";
import { getModel, priceFor } from "../model/catalog.ts";
import { InfraError } from "../errors.ts";
import { isTerminal, type TerminalStatus } from "../run/coord.ts";
import type { ItemResult } from "../run/manifest.ts";
import type { TaskMessage } from "../run/queue.ts";
import { keys, ObjectStore } from "../run/store.ts";
import { AttemptRecorder, closeAbandonedAttempt, DEFAULT_TRACE_FLUSH } from "./attempt.ts";
import type { TaskContext, WorkerDeps } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import { CallJournal } from "./journal.ts";
import { PendingWork } from "./pending.ts";
import { ReturnToQueue } from "./records.ts";
import { ItemSteps } from "./steps.ts";

/** A job record never changes once submitted: each container reads it once. */
const jobCache = new Map<string, JobRecord>();

async function readJob(store: ObjectStore, jobId: string): Promise<JobRecord> {
  const cached = jobCache.get(jobId);
  if (cached) return cached;
  const job = await store.getJson<JobRecord>(keys.job(jobId));
  // Missing from this bucket: nothing a later delivery can mend, but not the item's fault either.
  if (!job) throw new InfraError(`${keys.job(jobId)} is missing: was the job submitted to this bucket?`);
  jobCache.set(jobId, job);
  return job;
}

/** What a claim that did not start a delivery found: the item was already finished. */
export type Finished = { finished: TerminalStatus; job: JobRecord; store: ObjectStore };

export async function claim(deps: WorkerDeps, task: TaskMessage, ctx: TaskContext): Promise<Delivery | Finished> {
  const now = deps.now ?? Date.now;
  const store = new ObjectStore(deps.s3, task.bucket);
  const recorded = await readJob(store, task.jobId);
  // A retry with a larger answer cap carries it in the task (warm workers keep the job record cached).
  const job = task.maxOutputTokens ? { ...recorded, spec: { ...recorded.spec, maxOutputTokens: task.maxOutputTokens } } : recorded;
  const item = job.items.find((i) => i.id === task.itemId);
  if (!item) throw new InfraError(`item ${task.itemId} is not in job ${task.jobId}`);

  const taken = await deps.coord.claimItem(job.jobId, item.id, deps.owner, deps.timing.leaseMs, now());
  if (isTerminal(taken.item.status)) return { finished: taken.item.status, job, store };
  if (!taken.ok) {
    // A concurrent duplicate delivery: the owner is working on it. Come back after its lease.
    throw new ReturnToQueue(Math.max(1, (taken.item.leaseUntil - now()) / 1000 + 1), "another delivery holds the item's claim");
  }
  // A worker that died between writing the result and recording it: record it, never call again.
  if (taken.item.deliveries > 1) {
    const written = await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json"));
    if (written) return { finished: written.status, job, store };
  }
  // Prices follow the item's model (the answer step may switch it to the job's fallbackModel).
  const price: Delivery["price"] = (u) => priceFor(d.model ?? getModel(deps.catalog, job.model), u).cost;
  const context = { jobId: job.jobId, itemId: item.id };
  const d: Delivery = {
    deps,
    ctx,
    job,
    item,
    store,
    claimed: taken.item,
    model: null,
    recorder: new AttemptRecorder({ store, ...context, owner: deps.owner, log: deps.log, flush: deps.timing.traceFlush ?? DEFAULT_TRACE_FLUSH, currency: deps.catalog.currency, price, now }),
    journal: await CallJournal.open(store, job.jobId, item.id, taken.item.attempts),
    pending: new PendingWork(deps.log, context),
    steps: new ItemSteps(),
    now,
    startedAt: now(),
    price,
    currency: deps.catalog.currency,
  };
  if (taken.item.attempts > 0) await closeDeadAttempt(d);
  return d;
}

/** The delivery before this one died mid-attempt: close its attempt and count what it streamed (in the ledger too). */
async function closeDeadAttempt(d: Delivery): Promise<void> {
  const closed = await closeAbandonedAttempt({ store: d.store, jobId: d.job.jobId, itemId: d.item.id, price: d.price, now: d.now }, d.claimed.attempts);
  if (closed && d.job.limits.maxCost !== null) await d.deps.coord.settleSpend(d.job.jobId, closed.reservedCost, closed.countedCost);
}

/** Renews the claim and keeps the message hidden in short steps, so a dead worker's task is back within one lease. */
export function startHeartbeat(d: Delivery): { stop(): void } {
  const { deps, ctx, job, item } = d;
  const leaseS = Math.ceil(deps.timing.leaseMs / 1000);
  const beat = () =>
    Promise.all([deps.coord.renewClaim(job.jobId, item.id, deps.owner, deps.timing.leaseMs), ctx.extendVisibility?.(leaseS)]).catch((e: unknown) =>
      deps.log.warn({ jobId: job.jobId, itemId: item.id, error: String(e) }, "heartbeat failed"),
    );
  // The claim was just taken with a full lease, and runTask set the message's visibility: the first beat is a third of a lease away.
  const timer = setInterval(() => void beat(), Math.max(200, deps.timing.leaseMs / 3));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
