import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { TaskMessage } from "../run/queue.ts";
import { keys, ObjectStore } from "../run/store.ts";
import { getModel, priceFor, type ModelInfo } from "../model/catalog.ts";
import { loadDocument } from "../documents/index.ts";
import { DocumentError, LongdocError, ModelError, toErrorRecord } from "../errors.ts";
import { parseS3Uri, type JobRecord } from "../job/record.ts";
import { type ItemResult } from "../run/manifest.ts";
import { writeFinalManifest } from "../run/finish.ts";
import { addUsage, zeroUsage, type ChatResult, type Usage } from "../model/client.ts";
import { validateAnswer } from "../job/output.ts";
import { documentTokenCeiling, planCall, type CallPlan } from "../model/plan.ts";
import { messageText, splitPerDocument, type ChatMessage, type PromptDocument } from "../model/prompt.ts";
import pRetry from "p-retry";
import { setImmediate as yieldToIO } from "node:timers/promises";
import { ReturnToQueue } from "./records.ts";
import { planBatchCall, readBatchRequest, type BatchRequest } from "../job/batch.ts";
import { deployment } from "../settings.ts";
import { countChatTokens, countTokens } from "../tokens/index.ts";
import { AttemptRecorder, closeAbandonedAttempt, DEFAULT_TRACE_FLUSH, earlierAttempts } from "./attempt.ts";
import { callModel, fleetSpeed } from "./call.ts";
import { ItemSteps } from "./steps.ts";
// issue 12: samples, consensus and the code tool loop live in their own modules.
import { sampleCall, sampleFiles, samplingSummary, usesSampling, type SampledResult, type Sampling } from "./samples.ts";

import type { TaskContext, WorkerDeps, WorkerTiming } from "./context.ts";
export type { TaskContext, WorkerDeps, WorkerTiming };

export type TaskOutcome = "succeeded" | "failed" | "skipped" | "already-done";

const jobCache = new Map<string, JobRecord>();

async function readJob(store: ObjectStore, jobId: string): Promise<JobRecord> {
  const cached = jobCache.get(jobId);
  if (cached) return cached;
  const job = await store.getJson<JobRecord>(keys.job(jobId));
  if (!job) throw new LongdocError("internal", `${keys.job(jobId)} is missing: was the job submitted to this bucket?`);
  jobCache.set(jobId, job);
  return job;
}

/** The most the n-th backoff can wait: base × 2^(n-1), capped. */
export const backoffCeilingMs = (t: WorkerTiming, n: number): number => Math.min(t.backoffCapMs, t.backoffBaseMs * 2 ** Math.max(0, n - 1));

/** Full jitter: a random wait in [0, min(cap, base × 2^(n-1))], so retries of many items spread out. */
export function backoffMs(t: WorkerTiming, attempt: number, random = Math.random): number {
  return Math.round(random() * backoffCeilingMs(t, attempt));
}

/**
 * Runs one task: claims the item, reads the documents, reserves spend and quota, streams the
 * model's reasoning and answer, and writes them with result.json last (result.json marks the
 * item done). Returns when the item reached a terminal state; throws ReturnToQueue when the task
 * must wait (for quota, a backoff, or a live claim held by another delivery).
 */
export async function runTask(deps: WorkerDeps, task: TaskMessage, ctx: TaskContext): Promise<TaskOutcome> {
  // The message keeps the queue's long visibility until told otherwise: a short one at once, so a
  // worker that dies early (out of memory while extracting) gives its task back within a lease.
  // It goes out beside the first reads, and lands before the task returns (a wait's own visibility must come after it).
  const hidden = ctx.extendVisibility?.(Math.ceil(deps.timing.leaseMs / 1000)).catch((e: unknown) => deps.log.warn({ jobId: task.jobId, itemId: task.itemId, error: String(e) }, "heartbeat failed"));
  try {
    return await runTaskVisible(deps, task, ctx);
  } finally {
    await hidden;
  }
}

async function runTaskVisible(deps: WorkerDeps, task: TaskMessage, ctx: TaskContext): Promise<TaskOutcome> {
  const now = deps.now ?? Date.now;
  const steps = new ItemSteps();
  const store = new ObjectStore(deps.s3, task.bucket);
  const resultKey = keys.item(task.jobId, task.itemId, "result.json");
  const recorded = await readJob(store, task.jobId);
  // A retry with a larger answer cap carries it in the task (warm workers keep the job record cached).
  const job = task.maxOutputTokens ? { ...recorded, spec: { ...recorded.spec, maxOutputTokens: task.maxOutputTokens } } : recorded;
  const item = job.items.find((i) => i.id === task.itemId);
  if (!item) throw new LongdocError("internal", `item ${task.itemId} is not in job ${task.jobId}`);

  // What a claimed item needs is read while the claim is taken: only a duplicate delivery reads it
  // in vain. The documents' bytes come first, alone, so the largest read does not queue behind the
  // small ones; the claim and the job's markers are asked for next, and their answers arrive while
  // the documents are extracted and counted.
  const fetched = quiet(Promise.all(item.documents.map((d) => fetchDocument(deps.s3, d))));
  await steps.time("read", () => fetched.catch(() => undefined));
  const ahead = readAhead(deps, store, job, item, fetched, steps);
  const [done, claim] = await Promise.all([store.exists(resultKey), deps.coord.claimItem(job.jobId, item.id, deps.owner, deps.timing.leaseMs, now())]);
  if (done) {
    // A redelivery after the result was written: never pay for the call twice; finish the count
    // in case the worker that wrote it died before counting (which also marks the claim done).
    deps.log.info({ jobId: task.jobId, itemId: task.itemId }, "result exists; skipping the model call");
    await countFinished(deps, store, job, item.id);
    return "already-done";
  }
  if (!claim.ok) {
    if (claim.done) return "already-done";
    // A concurrent duplicate delivery: the owner is working on it. Come back after its lease.
    throw new ReturnToQueue(Math.max(1, (claim.leaseUntil - now()) / 1000 + 1), "another delivery holds the item's claim");
  }
  const heartbeat = startHeartbeat(deps, job.jobId, item.id, ctx);
  try {
    return await runClaimed(deps, store, job, item, ctx, now, claim.attempts, ahead, steps);
  } finally {
    heartbeat.stop();
  }
}

type Item = JobRecord["items"][number];
type LoadedDocument = Awaited<ReturnType<typeof loadFetched>>;

/** Reads started before the claim is known; each is awaited where it is needed (or never, on a duplicate delivery). */
interface ReadAhead {
  documents: Promise<LoadedDocument[]>;
  submitted: Promise<"submitted" | "submitting" | "failed">;
  halt: Promise<{ reason: string } | null>;
  cancelled: Promise<boolean>;
}

/** A read nobody may await must not become an unhandled rejection; whoever awaits it still sees the error. */
const quiet = <T>(p: Promise<T>): Promise<T> => (p.catch(() => undefined), p);

function readAhead(deps: WorkerDeps, store: ObjectStore, job: JobRecord, item: Item, fetched: Promise<FetchedDocument[]>, steps: ItemSteps): ReadAhead {
  const documents = fetched.then(async (all) => {
    // Let the requests just made leave before the CPU-bound extraction holds the thread.
    await yieldToIO();
    const maxTokens = Object.hasOwn(deps.catalog.models, job.model) ? documentTokenCeiling(job.spec, deps.catalog.models[job.model]!) : undefined;
    return steps.time("extract", () => Promise.all(all.map((f, i) => loadFetched(item.documents[i]!, f, { maxBytes: job.limits.maxDocumentBytes, maxTokens }))));
  });
  // The model's speed sizes the call: read now (when this container's copy is stale), not in the call's path.
  void fleetSpeed(deps, job.model);
  return {
    documents: quiet(documents),
    submitted: quiet(submitState(deps, job)),
    halt: quiet(store.getJson<{ reason: string }>(keys.halt(job.jobId)).then((h) => h ?? null)),
    cancelled: quiet(store.exists(keys.cancel(job.jobId))),
  };
}

async function runClaimed(
  deps: WorkerDeps,
  store: ObjectStore,
  job: JobRecord,
  item: Item,
  ctx: TaskContext,
  now: () => number,
  attemptsBefore: number,
  ahead: ReadAhead,
  steps: ItemSteps,
): Promise<TaskOutcome> {
  const resultKey = keys.item(job.jobId, item.id, "result.json");
  const startedAt = now();
  let attempts = attemptsBefore;
  // Looked up when a price is needed: an unknown model fails the item inside the try below.
  const price = (u: Parameters<typeof priceFor>[1]) => priceFor(getModel(deps.catalog, job.model), u).cost;
  // Every cost of the item is in the currency of the region the worker calls (the job's, normally).
  const currency = deps.catalog.currency;
  const recorder = new AttemptRecorder({
    store,
    jobId: job.jobId,
    itemId: item.id,
    owner: deps.owner,
    log: deps.log,
    flush: deps.timing.traceFlush ?? DEFAULT_TRACE_FLUSH,
    currency,
    price,
    now,
  });
  const finish = async (r: Omit<ItemResult, "version" | "id" | "attempts" | "model" | "startedAt" | "finishedAt" | "durationMs">) => {
    const finishedAt = now();
    // Every attempt's calls are paid for, the ones that failed and the ones a dead worker left
    // (counted from their partial traces where the provider's usage never arrived).
    const spent = await earlierAttempts(store, job.jobId, item.id, attempts + 1, recorder.closed);
    const paid = spent.cost > 0 || spent.usage.inputTokens > 0 ? { usage: spent.usage, ...costFields(spent.cost, currency), ...(spent.estimated ? { usageEstimated: true } : {}) } : {};
    const base = { version: 1 as const, id: item.id, attempts: Math.max(1, attempts), model: job.model, startedAt: new Date(startedAt).toISOString() };
    await steps.time("write", () => store.putJsonIfAbsent(resultKey, { ...base, ...r, ...paid, finishedAt: new Date(finishedAt).toISOString(), durationMs: finishedAt - startedAt }));
    // The result is written: what waited for it (settling the ledgers, removing partial files) starts beside the finish count.
    recorder.release();
    await countFinished(deps, store, job, item.id);
    return r.status;
  };
  const blank = {
    documents: item.documents.map((d) => ({ source: d.source })),
    usage: zeroUsage(),
    ...costFields(0, currency),
    tier: null,
    finishReason: null,
    requestId: null,
    answer: null,
    reasoning: null,
  };

  // The delivery before this one died mid-attempt: close its attempt and count what it streamed
  // (before anything else, so a halted or cancelled item's result counts it too).
  if (attemptsBefore > 0) {
    const abandoned = await closeAbandonedAttempt({ store, jobId: job.jobId, itemId: item.id, price, now }, attemptsBefore);
    if (abandoned && (job.limits.maxCost ?? job.limits.maxCostUsd) !== null) await deps.coord.settleSpend(job.jobId, abandoned.reservedCost, abandoned.countedCost);
  }

  const submitted = await ahead.submitted;
  if (submitted === "failed") {
    return finish({ ...blank, status: "skipped", error: { kind: "submit_failed", message: "not sent: the job's submit failed part-way, so its queued tasks are not run; submit it again" } });
  }
  if (submitted === "submitting") {
    await deps.coord.releaseClaim(job.jobId, item.id, deps.owner);
    throw new ReturnToQueue(5, "the job is still being submitted");
  }

  const halt = await ahead.halt;
  if (halt) return finish({ ...blank, status: "skipped", error: { kind: "halted", message: `the job was halted: ${halt.reason}` } });
  if (await ahead.cancelled) {
    return finish({ ...blank, status: "skipped", error: { kind: "cancelled", message: "the job was cancelled" } });
  }

  let documents = blank.documents;
  try {
    // Costs of one job are in one currency: a worker whose endpoint bills in another region's
    // currency than the one the job was submitted for would mix them.
    if (job.currency && job.currency !== currency) {
      throw new LongdocError(
        "job_invalid",
        `the job was priced in ${job.currency} (region ${job.region ?? "?"}) when submitted, but this worker's endpoint bills in ${currency} (region ${deps.catalog.region}); give submit and the workers the same QWEN_BASE_URL (or LONGDOC_REGION)`,
        { haltsJob: true },
      );
    }
    const loaded = await ahead.documents;
    documents = loaded.map((l) => l.info);
    const beginAttempt = async () => {
      if (recorder.begun) return;
      // The claim is this delivery's alone, so the attempt's number is known before the count
      // lands: the recorder opens it now and its open record is written beside the count.
      recorder.begin(attemptsBefore + 1);
      attempts = await deps.coord.countAttempt(job.jobId, item.id);
      if (attempts !== attemptsBefore + 1) deps.log.warn({ jobId: job.jobId, itemId: item.id, counted: attempts, expected: attemptsBefore + 1 }, "the item's attempt count moved under its claim");
    };
    // An OpenAI Batch line brings its own messages instead of documents.
    const request = item.request ? await readBatchRequest(store, item.request) : undefined;
    const result = await answerItem(deps, job, loaded.map((l) => l.doc), ctx, now, { recorder, beginAttempt, steps }, request);
    const json = job.spec.output.format === "json";
    // answer.json only ever holds a document that passed the schema; one that never did is kept beside it.
    const answerFile = !json ? "answer.md" : result.validationError ? "answer.invalid.json" : "answer.json";
    const answerPath = `items/${item.id}/${answerFile}`;
    const packed = job.spec.packing === "packed" && item.documents.length > 1 ? await writeDocumentAnswers(store, job, item, result.answer) : null;
    // issue 12: every sample's answer and the structured trace of rounds and tool calls.
    const sampled = result.sampling.length ? samplingSummary(result.sampling, job.spec.minAgreement) : null;
    for (const f of result.sampling.length ? sampleFiles(item.id, result.sampling, json) : []) await store.put(keys.item(job.jobId, item.id, f.file), f.body, f.contentType);
    // A call cut at the cap and then continued (onTruncated: continue) is not a cut answer.
    const lengthCut = result.cutCalls.length > 0;
    const keepTruncated = lengthCut && job.spec.output.onTruncated === "keep";
    const outputError: { kind: "output_truncated" | "output_invalid" | "low_agreement"; message: string } | null =
      lengthCut && !keepTruncated
        ? { kind: "output_truncated", message: truncationMessage(result, answerPath) }
        : result.validationError
          ? { kind: "output_invalid", message: result.validationError }
          : packed?.error
            ? { kind: "output_invalid", message: packed.error }
            : (sampled?.low ?? null);
    deps.log.info({ jobId: job.jobId, itemId: item.id, usage: result.usage, costUsd: result.costUsd, finishReasons: result.finishReasons }, "item answered");
    const reasoningPath = result.hasReasoning ? `items/${item.id}/reasoning.md` : null;
    // The attempt's record, naming the final files, is written beside them; result.json comes after both.
    await steps.time("write", () => Promise.all([
      keepPaid(() => store.put(keys.item(job.jobId, item.id, answerFile), result.answer, json ? "application/json" : "text/markdown; charset=utf-8")),
      // Without thinking there is no trace at all: no reasoning.md of empty headings.
      result.hasReasoning && keepPaid(() => store.put(keys.item(job.jobId, item.id, "reasoning.md"), result.reasoning, "text/markdown; charset=utf-8")),
      keepPaid(() => recorder.close(outputError ? "failed" : "succeeded", outputError, { reasoning: reasoningPath, answer: answerPath })),
    ]));
    const status = await keepPaid(() => finish({
      ...blank,
      documents,
      status: outputError ? "failed" : "succeeded",
      error: outputError,
      usage: result.usage,
      ...costFields(result.costUsd, currency),
      cacheSavings: result.cacheSavingsUsd,
      cacheSavingsUsd: currency === "USD" ? result.cacheSavingsUsd : null,
      tier: result.tier,
      finishReason: result.finishReasons.at(-1) ?? null,
      finishReasons: result.finishReasons,
      ...(keepTruncated ? { answerTruncated: true } : {}),
      ...(result.repaired ? { repaired: true } : {}),
      ...(json && result.validationError ? { invalidAnswer: answerPath } : {}),
      requestId: result.requestId,
      answer: json && result.validationError ? null : answerPath,
      reasoning: reasoningPath,
      truncated: result.truncated,
      documentAnswers: packed?.answers ?? null,
      ...(sampled ? { ...sampled.summary, trace: `items/${item.id}/trace.json` } : {}),
    }));
    // The settling of the ledgers, started when the call ended, is done before the task returns.
    await recorder.idle();
    deps.log.info({ jobId: job.jobId, itemId: item.id, status, steps: steps.summary() }, "item done");
    return status;
  } catch (e) {
    await recorder.idle();
    if (e instanceof ReturnToQueue) {
      // Waiting is not an attempt: hand the item back and let the queue hold the task (a call
      // already paid in this delivery stays in its attempt's record, with its trace).
      await recorder.close("interrupted", null).catch(() => undefined);
      await deps.coord.releaseClaim(job.jobId, item.id, deps.owner);
      throw e;
    }
    if (!LongdocError.is(e)) {
      // Not the item's fault: an S3 or DynamoDB error that outlasted the SDK's retries (or a fault
      // of longdoc's own). The task goes back to the queue as it is (records.ts), so a passing
      // storm costs a delivery, not the item; the DLQ's receive count bounds one that never clears.
      const message = e instanceof Error ? e.message : String(e);
      deps.log.warn({ jobId: job.jobId, itemId: item.id, error: message }, "item interrupted by an error outside the model call; the task goes back to the queue");
      await recorder.close("interrupted", { kind: "internal", message }).catch(() => undefined);
      await deps.coord.releaseClaim(job.jobId, item.id, deps.owner).catch(() => undefined);
      throw e;
    }
    const error = e;
    const record = {
      ...toErrorRecord(error),
      ...(error instanceof ModelError ? { ...(error.requestId ? { requestId: error.requestId } : {}), ...(error.status ? { status: error.status } : {}), ...(error.providerCode ? { providerCode: error.providerCode } : {}) } : {}),
    };
    const attempt = Math.max(1, attempts);
    deps.log.warn({ jobId: job.jobId, itemId: item.id, attempt, error: record }, "item attempt failed");
    // The attempt's record keeps the error beside its partial trace (none when no call was sent).
    await recorder.close("failed", record);
    if (error.haltsJob) await store.putJsonIfAbsent(keys.halt(job.jobId), { reason: record.message, kind: record.kind, itemId: item.id });
    // A 429 is the provider's door closing, not a failed answer: it waits in the queue without
    // using up the item's attempts (the DLQ's receive count still bounds an endless refusal).
    if (error.retryable && (error.code === "rate_limited" || attempt < (job.maxAttempts ?? deployment.maxAttempts))) {
      // The attempt was counted when its request left; a refusal gives it back.
      if (error.code === "rate_limited" && attempts > 0) await deps.coord.uncountAttempt(job.jobId, item.id);
      await deps.coord.releaseClaim(job.jobId, item.id, deps.owner);
      // A refusal does not count as an attempt, so its wait grows with the task's deliveries instead.
      const n = error.code === "rate_limited" ? ctx.receiveCount : attempt;
      throw new ReturnToQueue(backoffMs(deps.timing, n) / 1000, `attempt ${attempt} failed (${record.kind}); retrying after a backoff`, backoffCeilingMs(deps.timing, n) / 1000);
    }
    // Never sent because the job reached its cost cap: skipped, not failed.
    return finish({ ...blank, documents, status: error.code === "cost_cap" ? "skipped" : "failed", error: { kind: record.kind, message: record.message } });
  }
}

/**
 * Writes that follow a paid answer are tried again in place when S3 or DynamoDB fails past the
 * SDK's own retries: handing the task back would make the next delivery pay for the call again.
 * Every write here is idempotent (a put of the same bytes, result.json absent-only, the finish
 * count's own guard).
 */
const keepPaid = <T>(write: () => Promise<T>): Promise<T> =>
  pRetry(write, { retries: 4, minTimeout: 200, factor: 2, shouldRetry: ({ error }) => !LongdocError.is(error) });

/** Jobs known to be fully submitted: the state never changes back, so each container asks once. */
const submittedJobs = new Set<string>();
/** A submit that died without marking its job stays `submitting`; after this long it counts as failed. */
const SUBMIT_GRACE_MS = 15 * 60_000;

async function submitState(deps: WorkerDeps, job: JobRecord): Promise<"submitted" | "submitting" | "failed"> {
  if (submittedJobs.has(job.jobId)) return "submitted";
  const rec = await deps.coord.readJob(job.jobId);
  const state = rec === null || rec.state !== "submitting" ? (rec?.state === "failed" ? "failed" : "submitted") : Date.now() - Date.parse(rec.createdAt) > SUBMIT_GRACE_MS ? "failed" : "submitting";
  if (state === "submitted") submittedJobs.add(job.jobId);
  return state;
}

/** An item's cost in its currency, with the `costUsd` twin kept from before regions (null outside USD). */
const costFields = (cost: number, currency: string) => ({ cost, currency, costUsd: currency === "USD" ? cost : null });

/** Counts the item finished (once, whoever asks); the worker that finishes the job's last item writes the manifest. */
async function countFinished(deps: WorkerDeps, store: ObjectStore, job: JobRecord, itemId: string): Promise<void> {
  const { last } = await deps.coord.markFinished(job.jobId, itemId, job.items.length);
  // Only this caller learns it was last: the manifest write must not be lost to a passing S3 error.
  if (last) await keepPaid(() => writeFinalManifest(store, job, undefined, deps.notifier));
}

/** Renews the claim and keeps the message hidden in short steps, so a dead worker's task is back within one lease. */
function startHeartbeat(deps: WorkerDeps, jobId: string, itemId: string, ctx: TaskContext): { stop(): void } {
  const leaseS = Math.ceil(deps.timing.leaseMs / 1000);
  const beat = () =>
    Promise.all([deps.coord.renewClaim(jobId, itemId, deps.owner, deps.timing.leaseMs), ctx.extendVisibility?.(leaseS)]).catch((e: unknown) =>
      deps.log.warn({ jobId, itemId, error: String(e) }, "heartbeat failed"),
    );
  // The claim was just taken with a full lease, and runTask set the message's visibility: the first beat is a third of a lease away.
  const timer = setInterval(() => void beat(), Math.max(200, deps.timing.leaseMs / 3));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Maps a packed answer back to its documents: items/<itemId>/answers/<n>.md per document. */
async function writeDocumentAnswers(store: ObjectStore, job: JobRecord, item: JobRecord["items"][number], answer: string) {
  const parts = splitPerDocument(answer);
  const answers: { source: string; answer: string | null }[] = [];
  for (const [i, d] of item.documents.entries()) {
    const text = parts.get(i + 1);
    const file = `answers/${i + 1}.md`;
    if (text !== undefined) await store.put(keys.item(job.jobId, item.id, file), text, "text/markdown; charset=utf-8");
    answers.push({ source: d.source, answer: text === undefined ? null : `items/${item.id}/${file}` });
  }
  const missing = answers.filter((a) => a.answer === null).map((a) => a.source);
  const error = missing.length ? `the packed answer has no <answer document="N"> section for: ${missing.join(", ")}` : null;
  return { answers, error };
}

type FetchedDocument = Uint8Array | undefined;

function fetchDocument(s3: S3Client, doc: { uri: string }): Promise<FetchedDocument> {
  const { bucket, key } = parseS3Uri(doc.uri);
  return new ObjectStore(s3, bucket).getBytes(key);
}

async function loadFetched(doc: { source: string; uri: string; encoding?: string }, bytes: FetchedDocument, opts: { maxBytes: number | undefined; maxTokens: number | undefined }) {
  if (!bytes) throw new DocumentError("document_missing", `${doc.source}: not found at ${doc.uri}`);
  const loaded = await loadDocument({ bytes, name: doc.source }, { ...opts, encoding: doc.encoding });
  const sha256 = createHash("sha256").update(loaded.text).digest("hex");
  const tokens = countTokens(loaded.text);
  return {
    // The count and the hash go with the text, so planning the call does not count or hash it again.
    doc: { source: doc.source, text: loaded.text, tokens, sha256 } satisfies PromptDocument,
    info: { source: doc.source, format: loaded.format, bytes: loaded.bytes, chars: loaded.chars, tokens, sha256 },
  };
}

/** The item's answer: one call, or one per question over the same cached document prefix. */
interface ItemAnswer {
  reasoning: string;
  /** Whether any call produced reasoning text (false when thinking is off). */
  hasReasoning: boolean;
  answer: string;
  usage: Usage;
  costUsd: number;
  /** What the cache saved against paying full input price for every call. */
  cacheSavingsUsd: number;
  tier: string;
  /** One per call, in order (a JSON repair call included). */
  finishReasons: (string | null)[];
  /** Calls that continued a cut answer (output.onTruncated: continue). */
  continuations: number;
  /** Per question, the question id of each call that hit the output cap (null: the item's single call). */
  cutCalls: { id: string | null; repair: boolean; maxOutputTokens: number }[];
  requestId: string | null;
  truncated: CallPlan["truncated"];
  /** JSON jobs: the answer failed the schema, and the repair call (if any) did not fix it. */
  validationError: string | null;
  repaired: boolean;
  /** issue 12: one entry per sampled call (empty when the job has one sample and no tools). */
  sampling: Sampling[];
}

/** The attempt every call of this delivery belongs to; `beginAttempt` counts it when the first request leaves. */
interface AttemptContext {
  recorder: AttemptRecorder;
  beginAttempt: () => Promise<void>;
  steps: ItemSteps;
}

async function answerItem(deps: WorkerDeps, job: JobRecord, docs: PromptDocument[], ctx: TaskContext, now: () => number, attempt: AttemptContext, request?: BatchRequest): Promise<ItemAnswer> {
  const model = getModel(deps.catalog, job.model);
  const questions = job.spec.calls === "per-question" && job.spec.questions ? job.spec.questions.map((q) => [q]) : [job.spec.questions];
  const parts: { id: string | null; result: ChatResult; plan: CallPlan }[] = [];
  /** Every call made, continuations included (the priced list). */
  const calls: { id: string | null; result: ChatResult; plan: CallPlan; repair?: boolean; continued?: boolean }[] = [];
  // Sequential on purpose: the first call writes the cache the next ones read.
  for (const [i, qs] of questions.entries()) {
    const plan = attempt.steps.timeSync("plan", () => (request ? planBatchCall(request, model, job.spec) : planCall({ ...job.spec, questions: qs }, model, docs)));
    // Once a call of this item is paid for, later calls wait in process rather than lose it.
    // One delivery that calls the model is one attempt, however many questions it asks.
    const id = questions.length > 1 ? qs![0]!.id : null;
    const maxWaitMs = i === 0 ? deps.timing.maxInProcessWaitMs : 60_000;
    const call = (p: CallPlan, label: string | null, waitMs: number) =>
      callModel(deps, job, model, p, ctx, now, { label, maxWaitMs: waitMs, attempt: attempt.recorder, beginAttempt: attempt.beginAttempt, steps: attempt.steps });
    if (usesSampling(job)) {
      // issue 12: k samples and the tool loop, each call traced under its own label; the result
      // lists every call it made (priced one by one below). Continuation does not apply: the
      // answer is a consensus of samples, not one text to pick up.
      const result = await sampleCall({
        job,
        plan,
        question: id,
        first: i === 0,
        timeLeftMs: () => ctx.deadlineAt - now() - deps.timing.deadlineMarginMs,
        fits: (tokens, maxOut) => tokens <= Math.min(model.maxInputTokens, model.contextTokens - maxOut),
        call: (p, first, label) => call(p, [id, label].filter(Boolean).join(" ") || null, first ? maxWaitMs : 60_000),
      });
      calls.push({ id, plan, result });
      parts.push({ id, plan, result });
      continue;
    }
    const first = await call(plan, id, maxWaitMs);
    let joined = first;
    let last = { plan, result: first };
    // output.onTruncated: continue: partial mode picks the answer up where the cap cut it, a few times at most.
    for (let k = 1; last.result.finishReason === "length" && job.spec.output.onTruncated === "continue" && k <= MAX_CONTINUATIONS; k++) {
      const next = planContinuation(model, plan, joined.answer);
      if (!next) break;
      calls.push({ id, ...last, continued: true });
      const more = await call(next, `${id ?? "answer"} (continued ${k})`, 60_000);
      joined = joinContinuation(joined, more);
      last = { plan: next, result: more };
    }
    calls.push({ id, ...last });
    parts.push({ id, plan, result: joined });
  }
  const join = (pick: (r: ChatResult) => string) =>
    parts.length === 1 ? pick(parts[0]!.result) : parts.map((p) => `## ${p.id}\n\n${pick(p.result)}`).join("\n\n");
  let answer = join((r) => r.answer);

  // JSON: an answer that fails the schema gets one repair call over the same messages (the same
  // cached prefix), then the bad answer and what is wrong with it.
  let validationError: string | null = null;
  let repaired = false;
  const schema = job.outputSchema;
  if (schema && parts.length === 1) {
    const first = parts[0]!;
    const problem = validateAnswer(first.result.answer, schema);
    const cut = first.result.finishReason === "length";
    if (problem && cut && job.spec.output.onTruncated !== "keep") {
      // The item fails output_truncated: a repair under the same cap would be cut off too.
      validationError = problem;
    } else if (problem) {
      const repairPlan = planRepair(model, first.plan, first.result.answer, problem);
      if (!repairPlan) {
        validationError = `${problem} (no repair call: the prompt with the bad answer would not fit the model's context)`;
      } else {
        const r = await callModel(deps, job, model, repairPlan, ctx, now, { label: "repair", maxWaitMs: 60_000, attempt: attempt.recorder, beginAttempt: attempt.beginAttempt, steps: attempt.steps });
        calls.push({ id: null, plan: repairPlan, result: r, repair: true });
        const after = validateAnswer(r.answer, schema);
        if (after) {
          validationError = `${problem}; the repair call's answer still fails: ${after.replace(/^the answer /, "")}`;
          answer = r.answer;
        } else {
          answer = r.answer;
          repaired = true;
        }
      }
    }
  }

  // A sampled result stands for several real calls: each is priced at its own tier (issue 12).
  const priced = calls.flatMap((p) => (p.result as Partial<SampledResult>).calls ?? [p.result]).map((r) => {
    const usage = { ...r.usage, cacheType: r.cacheType };
    return { actual: priceFor(model, usage), full: priceFor(model, { ...usage, cachedTokens: 0, cacheWriteTokens: 0 }) };
  });
  const costUsd = priced.reduce((s, p) => s + p.actual.cost, 0);
  const last = calls.at(-1)!.result;
  return {
    reasoning: join((r) => r.reasoning),
    hasReasoning: parts.some((p) => p.result.reasoning.trim() !== ""),
    answer,
    usage: calls.reduce((u, p) => addUsage(u, p.result.usage), zeroUsage()),
    costUsd,
    cacheSavingsUsd: priced.reduce((s, p) => s + p.full.cost, 0) - costUsd,
    tier: priced.reduce((a, b) => (b.actual.tierIndex > a.actual.tierIndex ? b : a)).actual.tier,
    finishReasons: calls.map((p) => p.result.finishReason),
    continuations: calls.filter((p) => p.continued).length,
    cutCalls: calls.filter((p) => p.result.finishReason === "length" && !p.continued).map((p) => ({ id: p.id, repair: p.repair === true, maxOutputTokens: p.plan.maxOutputTokens })),
    requestId: last.requestId,
    truncated: parts[0]!.plan.truncated,
    validationError,
    repaired,
    sampling: parts.flatMap((p) => ((p.result as Partial<SampledResult>).sampling ? [(p.result as SampledResult).sampling] : [])),
  };
}

/** How many times `output.onTruncated: continue` asks the model to go on with one answer. */
export const MAX_CONTINUATIONS = 3;

/** The next piece of a cut answer: the same messages, then the answer so far as a partial assistant message (docs/qwen-api.md §3). Null when it cannot fit. */
function planContinuation(model: ModelInfo, plan: CallPlan, answerSoFar: string): CallPlan | null {
  const messages: ChatMessage[] = [...plan.messages, { role: "assistant", content: answerSoFar, partial: true }];
  const inputTokens = countChatTokens(messages.map((m) => ({ role: m.role, content: messageText(m) })));
  if (inputTokens > Math.min(model.maxInputTokens, model.contextTokens - plan.maxOutputTokens)) return null;
  return { ...plan, messages, inputTokens };
}

/** One answer from a call and its continuation: the texts joined, the usage summed, the last finish reason. */
function joinContinuation(a: ChatResult, b: ChatResult): ChatResult {
  return { ...b, reasoning: a.reasoning + b.reasoning, answer: a.answer + b.answer, usage: addUsage(a.usage, b.usage) };
}

/** The instruction of a JSON repair call; the simulator and tests recognise it by its first words. */
export const REPAIR_INSTRUCTION = "Your previous answer does not match the required JSON schema.";

/** The repair call: the first call's messages, the bad answer, then the validation errors. Null when it cannot fit. */
function planRepair(model: ModelInfo, plan: CallPlan, badAnswer: string, problem: string): CallPlan | null {
  const messages: ChatMessage[] = [
    ...plan.messages,
    { role: "assistant", content: badAnswer },
    {
      role: "user",
      content: `${REPAIR_INSTRUCTION} What is wrong with it: ${problem}\n\nReply with only the corrected JSON document, valid against the schema, keeping everything that was right.`,
    },
  ];
  const inputTokens = countChatTokens(messages.map((m) => ({ role: m.role, content: messageText(m) })));
  if (inputTokens > Math.min(model.maxInputTokens, model.contextTokens - plan.maxOutputTokens)) return null;
  return { ...plan, messages, inputTokens };
}

/** What a user reads when an answer hit the output cap. */
function truncationMessage(r: ItemAnswer, answerPath: string): string {
  const which = r.cutCalls
    .map((c) => (c.repair ? "the JSON repair call" : c.id ? `the answer to question '${c.id}'` : "the answer"))
    .join(", ");
  const cap = Math.max(...r.cutCalls.map((c) => c.maxOutputTokens));
  return (
    `${which} hit the output cap (max ${cap} tokens, finish_reason "length") and was cut off; the partial answer is kept at ${answerPath}. ` +
    "Raise maxOutputTokens (or re-run it with 'longdoc retry <jobId> --max-output-tokens N'), or set output.onTruncated: keep to accept truncated answers" +
    (r.continuations > 0 ? ` (it was continued ${r.continuations} time(s), the most output.onTruncated: continue asks for)` : "")
  );
}
