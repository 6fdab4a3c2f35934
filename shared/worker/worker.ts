import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { TaskMessage } from "../run/queue.ts";
import { keys, ObjectStore } from "../run/store.ts";
import { budgetToDeadline } from "../model/budget.ts";
import { getModel, priceFor, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { loadDocument } from "../documents/index.ts";
import { DocumentError, LongdocError, ModelError, toErrorRecord } from "../errors.ts";
import { parseS3Uri, type JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { type ItemResult } from "../run/manifest.ts";
import { writeFinalManifest } from "../run/finish.ts";
import type { Coordinator } from "../run/coord.ts";
import { addUsage, zeroUsage, type ChatResult, type ModelClient, type Usage } from "../model/client.ts";
import { validateAnswer } from "../job/output.ts";
import { planCall, type CallPlan } from "../model/plan.ts";
import { messageText, splitPerDocument, type ChatMessage, type PromptDocument } from "../model/prompt.ts";
import { ReturnToQueue } from "./records.ts";
import { deployment } from "../settings.ts";
import { countChatTokens, countTokens } from "../tokens/index.ts";
// issue 12: samples, consensus and the code tool loop live in their own modules.
import { sampleCall, sampleFiles, samplingSummary, usesSampling, type SampledResult, type Sampling } from "./samples.ts";

export interface WorkerDeps {
  s3: S3Client;
  model: ModelClient;
  catalog: Catalog;
  /** Shared by every worker of every job: account quota, item claims, cost ledger, finish counter. */
  coord: Coordinator;
  /** Who this worker is in claims (container or process id); a lease names its owner. */
  owner: string;
  log: Log;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  timing: WorkerTiming;
}

/** The worker's clocks; every wait longer than `maxInProcessWaitMs` happens in the queue instead. */
export interface WorkerTiming {
  decodeTokensPerSecond: number;
  deadlineMarginMs: number;
  /** A claim's lease; the heartbeat renews it (and the message's visibility) every third of it. */
  leaseMs: number;
  /** Quota waits up to this long are slept in process; longer ones go back to SQS. */
  maxInProcessWaitMs: number;
  /** Backoff after a retryable failure: full jitter over base × 2^(attempt-1), capped. */
  backoffBaseMs: number;
  backoffCapMs: number;
}

export interface TaskContext {
  /** SQS ApproximateReceiveCount: 1 on the first delivery (includes returns to wait, so it is not the attempt count). */
  receiveCount: number;
  /** Epoch ms when the runtime will kill this invocation. */
  deadlineAt: number;
  /** Keeps this delivery's message hidden for `seconds` more (the heartbeat's other half). */
  extendVisibility?: (seconds: number) => Promise<void>;
}

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

/** Full jitter: a random wait in [0, min(cap, base × 2^(n-1))], so retries of many items spread out. */
export function backoffMs(t: WorkerTiming, attempt: number, random = Math.random): number {
  return Math.round(random() * Math.min(t.backoffCapMs, t.backoffBaseMs * 2 ** Math.max(0, attempt - 1)));
}

/**
 * Runs one task: claims the item, reads the documents, reserves spend and quota, streams the
 * model's reasoning and answer, and writes them with result.json last (result.json marks the
 * item done). Returns when the item reached a terminal state; throws ReturnToQueue when the task
 * must wait (for quota, a backoff, or a live claim held by another delivery).
 */
export async function runTask(deps: WorkerDeps, task: TaskMessage, ctx: TaskContext): Promise<TaskOutcome> {
  const now = deps.now ?? Date.now;
  const store = new ObjectStore(deps.s3, task.bucket);
  const resultKey = keys.item(task.jobId, task.itemId, "result.json");
  const job = await readJob(store, task.jobId);
  const item = job.items.find((i) => i.id === task.itemId);
  if (!item) throw new LongdocError("internal", `item ${task.itemId} is not in job ${task.jobId}`);

  if (await store.exists(resultKey)) {
    // A redelivery after the result was written: never pay for the call twice; finish the count
    // in case the worker that wrote it died before counting.
    deps.log.info({ jobId: task.jobId, itemId: task.itemId }, "result exists; skipping the model call");
    await countFinished(deps, store, job, item.id);
    return "already-done";
  }

  const claim = await deps.coord.claimItem(job.jobId, item.id, deps.owner, deps.timing.leaseMs, now());
  if (!claim.ok) {
    if (claim.done) return "already-done";
    // A concurrent duplicate delivery: the owner is working on it. Come back after its lease.
    throw new ReturnToQueue(Math.max(1, (claim.leaseUntil - now()) / 1000 + 1), "another delivery holds the item's claim");
  }
  const heartbeat = startHeartbeat(deps, job.jobId, item.id, ctx);
  try {
    return await runClaimed(deps, store, job, item, ctx, now, claim.attempts);
  } finally {
    heartbeat.stop();
  }
}

type Item = JobRecord["items"][number];

async function runClaimed(deps: WorkerDeps, store: ObjectStore, job: JobRecord, item: Item, ctx: TaskContext, now: () => number, attemptsBefore: number): Promise<TaskOutcome> {
  const resultKey = keys.item(job.jobId, item.id, "result.json");
  const startedAt = now();
  let attempts = attemptsBefore;
  const finish = async (r: Omit<ItemResult, "version" | "id" | "attempts" | "model" | "startedAt" | "finishedAt" | "durationMs">) => {
    const finishedAt = now();
    const base = { version: 1 as const, id: item.id, attempts: Math.max(1, attempts), model: job.model, startedAt: new Date(startedAt).toISOString() };
    await store.putJsonIfAbsent(resultKey, { ...base, ...r, finishedAt: new Date(finishedAt).toISOString(), durationMs: finishedAt - startedAt });
    await countFinished(deps, store, job, item.id);
    return r.status;
  };
  const blank = {
    documents: item.documents.map((d) => ({ source: d.source })),
    usage: zeroUsage(),
    costUsd: 0,
    tier: null,
    finishReason: null,
    requestId: null,
    answer: null,
    reasoning: null,
  };

  const submitted = await submitState(deps, job);
  if (submitted === "failed") {
    return finish({ ...blank, status: "skipped", error: { kind: "submit_failed", message: "not sent: the job's submit failed part-way, so its queued tasks are not run; submit it again" } });
  }
  if (submitted === "submitting") {
    await deps.coord.releaseClaim(job.jobId, item.id, deps.owner);
    throw new ReturnToQueue(5, "the job is still being submitted");
  }

  const halt = await store.getJson<{ reason: string }>(keys.halt(job.jobId));
  if (halt) return finish({ ...blank, status: "skipped", error: { kind: "halted", message: `the job was halted: ${halt.reason}` } });
  if (await store.exists(keys.cancel(job.jobId))) {
    return finish({ ...blank, status: "skipped", error: { kind: "cancelled", message: "the job was cancelled" } });
  }

  let documents = blank.documents;
  try {
    const loaded = await Promise.all(item.documents.map((d) => readDocument(deps.s3, d, job.limits.maxDocumentBytes)));
    documents = loaded.map((l) => l.info);
    const result = await answerItem(deps, job, loaded.map((l) => l.doc), ctx, now, async () => {
      attempts = await deps.coord.countAttempt(job.jobId, item.id);
    });
    const json = job.spec.output.format === "json";
    // answer.json only ever holds a document that passed the schema; one that never did is kept beside it.
    const answerFile = !json ? "answer.md" : result.validationError ? "answer.invalid.json" : "answer.json";
    const answerPath = `items/${item.id}/${answerFile}`;
    await store.put(keys.item(job.jobId, item.id, answerFile), result.answer, json ? "application/json" : "text/markdown; charset=utf-8");
    // Without thinking there is no trace at all: no reasoning.md of empty headings.
    if (result.hasReasoning) await store.put(keys.item(job.jobId, item.id, "reasoning.md"), result.reasoning, "text/markdown; charset=utf-8");
    const packed = job.spec.packing === "packed" && item.documents.length > 1 ? await writeDocumentAnswers(store, job, item, result.answer) : null;
    // issue 12: every sample's answer and the structured trace of rounds and tool calls.
    const sampled = result.sampling.length ? samplingSummary(result.sampling, job.spec.minAgreement) : null;
    for (const f of result.sampling.length ? sampleFiles(item.id, result.sampling, json) : []) await store.put(keys.item(job.jobId, item.id, f.file), f.body, f.contentType);
    const lengthCut = result.finishReasons.some((r) => r === "length");
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
    return await finish({
      ...blank,
      documents,
      status: outputError ? "failed" : "succeeded",
      error: outputError,
      usage: result.usage,
      costUsd: result.costUsd,
      cacheSavingsUsd: result.cacheSavingsUsd,
      tier: result.tier,
      finishReason: result.finishReasons.at(-1) ?? null,
      finishReasons: result.finishReasons,
      ...(keepTruncated ? { answerTruncated: true } : {}),
      ...(result.repaired ? { repaired: true } : {}),
      ...(json && result.validationError ? { invalidAnswer: answerPath } : {}),
      requestId: result.requestId,
      answer: json && result.validationError ? null : answerPath,
      reasoning: result.hasReasoning ? `items/${item.id}/reasoning.md` : null,
      truncated: result.truncated,
      documentAnswers: packed?.answers ?? null,
      ...(sampled ? { ...sampled.summary, trace: `items/${item.id}/trace.json` } : {}),
    });
  } catch (e) {
    if (e instanceof ReturnToQueue) {
      // Waiting is not an attempt: hand the item back and let the queue hold the task.
      await deps.coord.releaseClaim(job.jobId, item.id, deps.owner);
      throw e;
    }
    const error = LongdocError.is(e) ? e : new LongdocError("internal", e instanceof Error ? e.message : String(e), { cause: e });
    const record = { ...toErrorRecord(error), ...(error instanceof ModelError && error.requestId ? { requestId: error.requestId } : {}) };
    const attempt = Math.max(1, attempts);
    deps.log.warn({ jobId: job.jobId, itemId: item.id, attempt, error: record }, "item attempt failed");
    await store.putJson(keys.attempt(job.jobId, item.id, attempt), { ...record, at: new Date(now()).toISOString() });
    if (error.haltsJob) await store.putJsonIfAbsent(keys.halt(job.jobId), { reason: record.message, kind: record.kind, itemId: item.id });
    // A 429 is the provider's door closing, not a failed answer: it waits in the queue without
    // using up the item's attempts (the DLQ's receive count still bounds an endless refusal).
    if (error.retryable && (error.code === "rate_limited" || attempt < (job.maxAttempts ?? deployment.maxAttempts))) {
      await deps.coord.releaseClaim(job.jobId, item.id, deps.owner);
      throw new ReturnToQueue(backoffMs(deps.timing, attempt) / 1000, `attempt ${attempt} failed (${record.kind}); retrying after a backoff`);
    }
    // Never sent because the job reached its cost cap: skipped, not failed.
    return finish({ ...blank, documents, status: error.code === "cost_cap" ? "skipped" : "failed", error: { kind: record.kind, message: record.message } });
  }
}

/** How late a worker may wake for its planned start before it takes a new one (under the schedule's margin). */
const LATE_START_MS = 100;

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

/** Counts the item finished (once, whoever asks); the worker that finishes the job's last item writes the manifest. */
async function countFinished(deps: WorkerDeps, store: ObjectStore, job: JobRecord, itemId: string): Promise<void> {
  const { last } = await deps.coord.markFinished(job.jobId, itemId, job.items.length);
  if (last) await writeFinalManifest(store, job);
}

/** Renews the claim and keeps the message hidden in short steps, so a dead worker's task is back within one lease. */
function startHeartbeat(deps: WorkerDeps, jobId: string, itemId: string, ctx: TaskContext): { stop(): void } {
  const leaseS = Math.ceil(deps.timing.leaseMs / 1000);
  const beat = () =>
    Promise.all([deps.coord.renewClaim(jobId, itemId, deps.owner, deps.timing.leaseMs), ctx.extendVisibility?.(leaseS)]).catch((e: unknown) =>
      deps.log.warn({ jobId, itemId, error: String(e) }, "heartbeat failed"),
    );
  void beat();
  const timer = setInterval(beat, Math.max(200, deps.timing.leaseMs / 3));
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

async function readDocument(s3: S3Client, doc: { source: string; uri: string }, maxBytes: number) {
  const { bucket, key } = parseS3Uri(doc.uri);
  const bytes = await new ObjectStore(s3, bucket).getBytes(key);
  if (!bytes) throw new DocumentError("document_missing", `${doc.source}: not found at ${doc.uri}`);
  const loaded = await loadDocument({ bytes, name: doc.source }, { maxBytes });
  const sha256 = createHash("sha256").update(loaded.text).digest("hex");
  const tokens = countTokens(loaded.text);
  return {
    doc: { source: doc.source, text: loaded.text } satisfies PromptDocument,
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

async function answerItem(deps: WorkerDeps, job: JobRecord, docs: PromptDocument[], ctx: TaskContext, now: () => number, countAttempt: () => Promise<void>): Promise<ItemAnswer> {
  const model = getModel(deps.catalog, job.model);
  const questions = job.spec.calls === "per-question" && job.spec.questions ? job.spec.questions.map((q) => [q]) : [job.spec.questions];
  const parts: { id: string | null; result: ChatResult; plan: CallPlan }[] = [];
  // Sequential on purpose: the first call writes the cache the next ones read.
  for (const [i, qs] of questions.entries()) {
    const plan = planCall({ ...job.spec, questions: qs }, model, docs);
    // Once a call of this item is paid for, later calls wait in process rather than lose it.
    // One delivery that calls the model is one attempt, however many questions it asks.
    const id = questions.length > 1 ? qs![0]!.id : null;
    // issue 12: k samples and the tool loop; otherwise the one plain call.
    const result = usesSampling(job)
      ? await sampleCall({
          job,
          plan,
          question: id,
          first: i === 0,
          timeLeftMs: () => ctx.deadlineAt - now() - deps.timing.deadlineMarginMs,
          fits: (tokens, maxOut) => tokens <= Math.min(model.maxInputTokens, model.contextTokens - maxOut),
          call: (p, first) => callModel(deps, job, model, p, ctx, now, first ? deps.timing.maxInProcessWaitMs : 60_000, first ? countAttempt : async () => {}),
        })
      : await callModel(deps, job, model, plan, ctx, now, i === 0 ? deps.timing.maxInProcessWaitMs : 60_000, i === 0 ? countAttempt : async () => {});
    parts.push({ id, plan, result });
  }
  const join = (pick: (r: ChatResult) => string) =>
    parts.length === 1 ? pick(parts[0]!.result) : parts.map((p) => `## ${p.id}\n\n${pick(p.result)}`).join("\n\n");
  let answer = join((r) => r.answer);
  const calls: { id: string | null; result: ChatResult; plan: CallPlan; repair?: boolean }[] = [...parts];

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
        const r = await callModel(deps, job, model, repairPlan, ctx, now, 60_000, async () => {});
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
  const costUsd = priced.reduce((s, p) => s + p.actual.costUsd, 0);
  const last = calls.at(-1)!.result;
  return {
    reasoning: join((r) => r.reasoning),
    hasReasoning: parts.some((p) => p.result.reasoning.trim() !== ""),
    answer,
    usage: calls.reduce((u, p) => addUsage(u, p.result.usage), zeroUsage()),
    costUsd,
    cacheSavingsUsd: priced.reduce((s, p) => s + p.full.costUsd, 0) - costUsd,
    tier: priced.reduce((a, b) => (b.actual.tierIndex > a.actual.tierIndex ? b : a)).actual.tier,
    finishReasons: calls.map((p) => p.result.finishReason),
    cutCalls: calls.filter((p) => p.result.finishReason === "length").map((p) => ({ id: p.id, repair: p.repair === true, maxOutputTokens: p.plan.maxOutputTokens })),
    requestId: last.requestId,
    truncated: parts[0]!.plan.truncated,
    validationError,
    repaired,
    sampling: parts.flatMap((p) => ((p.result as Partial<SampledResult>).sampling ? [(p.result as SampledResult).sampling] : [])),
  };
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
    "Raise maxOutputTokens, or set output.onTruncated: keep to accept truncated answers"
  );
}

/**
 * One model call inside the fleet's shared limits: the call's worst-case cost is reserved in the
 * job's ledger and its worst-case tokens in the account's quota before it starts, and both are
 * settled with the real usage after. A wait longer than `maxWaitMs` goes back to the queue.
 */
async function callModel(
  deps: WorkerDeps,
  job: JobRecord,
  model: ModelInfo,
  plan: CallPlan,
  ctx: TaskContext,
  now: () => number,
  maxWaitMs: number,
  countAttempt: () => Promise<void>,
): Promise<ChatResult> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeLeftMs = () => ctx.deadlineAt - now() - deps.timing.deadlineMarginMs;
  const wanted = { maxOutputTokens: plan.maxOutputTokens, thinkingBudget: plan.thinkingBudget };
  let budget = budgetToDeadline(wanted, timeLeftMs(), deps.timing.decodeTokensPerSecond);
  if (!budget) throw new ReturnToQueue(1, `only ${Math.round(timeLeftMs() / 1000)} s left before the worker's deadline`);
  const worstTokens = plan.inputTokens + budget.maxOutputTokens + (budget.thinkingBudget ?? 0);

  const cap = job.limits.maxCostUsd;
  const worstUsd = priceFor(model, { inputTokens: plan.inputTokens, outputTokens: worstTokens - plan.inputTokens, cachedTokens: 0 }).costUsd;
  if (cap !== null) {
    const spend = await deps.coord.reserveSpend(job.jobId, worstUsd, cap);
    if (!spend.ok) {
      if (spend.capReached) {
        throw new LongdocError(
          "cost_cap",
          `not sent: the job has spent $${spend.spentUsd.toFixed(4)} and this call could cost up to $${worstUsd.toFixed(4)}, over limits.maxCostUsd ($${cap})`,
        );
      }
      // Calls in flight hold the rest of the cap; their real cost is usually lower. Wait for them.
      throw new ReturnToQueue(2 + Math.random() * 3, "the job's cost cap is held by calls in flight");
    }
  }
  const settleSpend = (actualUsd: number) => (cap === null ? Promise.resolve() : deps.coord.settleSpend(job.jobId, worstUsd, actualUsd));

  const reservation = {
    model: job.model,
    tokens: worstTokens,
    account: { rpm: model.rpm, tpm: model.tpm },
    job: { jobId: job.jobId, rpm: job.spec.limits.rpm, tpm: job.spec.limits.tpm },
  };
  const quota = await deps.coord.reserveQuota({ ...reservation, maxWaitMs: Math.min(maxWaitMs, Math.max(0, timeLeftMs() / 2)), now: now() });
  if (!quota.ok) {
    await settleSpend(0);
    throw new ReturnToQueue(quota.retryAfterMs / 1000 + Math.random(), "waiting for the account's quota");
  }
  let settled = false;
  let ticket = quota.ticket;
  try {
    // A start planned in the log is only safe if the request leaves on time: a worker that wakes
    // late (a busy machine, a slow store) takes a new place rather than crowd the next request.
    for (let startAt = quota.startAt, round = 0; ; round++) {
      const wait = startAt - now();
      if (wait > 0) await sleep(wait);
      if (now() - startAt <= LATE_START_MS || round >= 3) break;
      await deps.coord.releaseQuota(ticket);
      const again = await deps.coord.reserveQuota({ ...reservation, now: now(), maxWaitMs: 60_000 });
      if (!again.ok) throw new ReturnToQueue(again.retryAfterMs / 1000, "waiting for the account's quota");
      ticket = again.ticket;
      startAt = again.startAt;
    }
    // Sized after the wait, from the time really left.
    budget = budgetToDeadline(wanted, timeLeftMs(), deps.timing.decodeTokensPerSecond) ?? { ...budget, maxOutputTokens: 256, thinkingBudget: budget.thinkingBudget === undefined ? undefined : 1 };
    await countAttempt();
    const result = await deps.model.chat(
      {
        model: job.model,
        messages: plan.messages,
        maxOutputTokens: budget.maxOutputTokens,
        // The plan's thinking: a question may set its own (issue 12).
        thinking: { enabled: plan.thinkingBudget !== undefined, budget: budget.thinkingBudget },
        json: job.outputSchema ? { schema: job.outputSchema } : undefined,
        ...plan.extras, // issue 12: tools, tool_choice, seed
      },
      { signal: AbortSignal.timeout(Math.max(1, timeLeftMs())) },
    );
    settled = true;
    await Promise.all([
      deps.coord.settleQuota(ticket, result.usage.inputTokens + result.usage.outputTokens),
      settleSpend(priceFor(model, { ...result.usage, cacheType: result.cacheType }).costUsd),
    ]);
    return result;
  } finally {
    if (!settled) {
      // The call failed before its usage arrived: give the reservations back (what a failed call
      // was billed, if anything, is not known here).
      await Promise.all([deps.coord.settleQuota(ticket, plan.inputTokens), settleSpend(0)]).catch(() => undefined);
    }
  }
}
