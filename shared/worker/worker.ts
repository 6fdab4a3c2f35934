import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import pRetry from "p-retry";
import type { TaskMessage } from "../run/queue.ts";
import { keys, ObjectStore } from "../run/store.ts";
import { budgetToDeadline } from "../model/budget.ts";
import { getModel, priceFor, type Catalog } from "../model/catalog.ts";
import { loadDocument } from "../documents/index.ts";
import { DocumentError, LongdocError, toErrorRecord } from "../errors.ts";
import { parseS3Uri, type JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { type ItemResult } from "../run/manifest.ts";
import { writeManifestIfDone } from "../run/finish.ts";
import { addUsage, zeroUsage, type ChatResult, type ModelClient, type Usage } from "../model/client.ts";
import { validateAnswer } from "../job/output.ts";
import { planCall, type CallPlan } from "../model/plan.ts";
import { splitPerDocument, type PromptDocument } from "../model/prompt.ts";
import type { RateLimiter } from "./rate.ts";
import type { SpendTracker } from "./spend.ts";
import { countTokens } from "../tokens/index.ts";

export interface WorkerDeps {
  s3: S3Client;
  model: ModelClient;
  catalog: Catalog;
  /** One limiter per job and process, so every task of a job shares the job's quota. */
  limiterFor(job: JobRecord): RateLimiter;
  log: Log;
  now?: () => number;
  /** Quick retries inside one delivery for transient faults; SQS redelivery is the outer loop. */
  retry: { retries: number; minTimeoutMs: number };
  decodeTokensPerSecond: number;
  deadlineMarginMs: number;
  /** The job's spend as this process has seen it; stops calls past `maxCostUsd`. */
  spend: SpendTracker;
}

export interface TaskContext {
  /** SQS ApproximateReceiveCount: 1 on the first delivery. */
  receiveCount: number;
  /** Epoch ms when the runtime will kill this invocation. */
  deadlineAt: number;
}

export type TaskOutcome = "succeeded" | "failed" | "skipped" | "already-done";

const jobCache = new Map<string, JobRecord>();

async function readJob(store: ObjectStore, jobId: string): Promise<JobRecord> {
  const cached = jobCache.get(jobId);
  if (cached) return cached;
  const job = await store.getJson<JobRecord>(keys.job(jobId));
  if (!job) throw new LongdocError("internal", `runs/${jobId}/job.json is missing: was the job submitted to this bucket?`);
  jobCache.set(jobId, job);
  return job;
}

/**
 * Runs one task: reads the documents, checks they fit, streams the model's reasoning and answer,
 * and writes them with result.json last (result.json marks the item done). Returns when the item
 * reached a terminal state; throws when SQS should deliver the task again.
 */
export async function runTask(deps: WorkerDeps, task: TaskMessage, ctx: TaskContext): Promise<TaskOutcome> {
  const now = deps.now ?? Date.now;
  const store = new ObjectStore(deps.s3, task.bucket);
  const resultKey = keys.item(task.jobId, task.itemId, "result.json");
  const job = await readJob(store, task.jobId);

  if (await store.exists(resultKey)) {
    // A redelivery after the result was written: never pay for the call twice.
    deps.log.info({ jobId: task.jobId, itemId: task.itemId }, "result exists; skipping the model call");
    await writeManifestIfDone(store, job);
    return "already-done";
  }

  const item = job.items.find((i) => i.id === task.itemId);
  if (!item) throw new LongdocError("internal", `item ${task.itemId} is not in job ${task.jobId}`);
  const startedAt = now();
  const base = {
    version: 1 as const,
    id: item.id,
    attempts: ctx.receiveCount,
    model: job.model,
    startedAt: new Date(startedAt).toISOString(),
  };
  const finish = async (r: Omit<ItemResult, keyof typeof base | "finishedAt" | "durationMs">) => {
    const finishedAt = now();
    await store.putJsonIfAbsent(resultKey, { ...base, ...r, finishedAt: new Date(finishedAt).toISOString(), durationMs: finishedAt - startedAt });
    await writeManifestIfDone(store, job);
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

  const halt = await store.getJson<{ reason: string }>(keys.halt(job.jobId));
  if (halt) return finish({ ...blank, status: "skipped", error: { kind: "halted", message: `the job was halted: ${halt.reason}` } });
  if (await store.exists(keys.cancel(job.jobId))) {
    return finish({ ...blank, status: "skipped", error: { kind: "cancelled", message: "the job was cancelled" } });
  }

  let documents = blank.documents;
  try {
    const loaded = await Promise.all(item.documents.map((d) => readDocument(deps.s3, d, job.limits.maxDocumentBytes)));
    documents = loaded.map((l) => l.info);
    const result = await answerItem(deps, job, loaded.map((l) => l.doc), ctx, now);
    const answerFile = job.spec.output.format === "json" ? "answer.json" : "answer.md";
    const answerKey = keys.item(job.jobId, item.id, answerFile);
    const reasoningKey = keys.item(job.jobId, item.id, "reasoning.md");
    await store.put(reasoningKey, result.reasoning, "text/markdown; charset=utf-8");
    await store.put(answerKey, result.answer, answerFile.endsWith(".json") ? "application/json" : "text/markdown; charset=utf-8");
    const packed = job.spec.packing === "packed" && item.documents.length > 1 ? await writeDocumentAnswers(store, job, item, result.answer) : null;
    const outputError = packed?.error ?? (job.outputSchema ? validateAnswer(result.answer, job.outputSchema) : null);
    deps.log.info({ jobId: job.jobId, itemId: item.id, usage: result.usage, costUsd: result.costUsd }, "item answered");
    return await finish({
      ...blank,
      documents,
      status: outputError ? "failed" : "succeeded",
      error: outputError ? { kind: "output_invalid", message: outputError } : null,
      usage: result.usage,
      costUsd: result.costUsd,
      cacheSavingsUsd: result.cacheSavingsUsd,
      tier: result.tier,
      finishReason: result.finishReason,
      requestId: result.requestId,
      answer: `items/${item.id}/${answerFile}`,
      reasoning: `items/${item.id}/reasoning.md`,
      truncated: result.truncated,
      documentAnswers: packed?.answers ?? null,
    });
  } catch (e) {
    const error = LongdocError.is(e) ? e : new LongdocError("internal", e instanceof Error ? e.message : String(e), { cause: e });
    const record = toErrorRecord(error);
    deps.log.warn({ jobId: job.jobId, itemId: item.id, attempt: ctx.receiveCount, error: record }, "item attempt failed");
    await store.putJson(keys.attempt(job.jobId, item.id, ctx.receiveCount), { ...record, at: new Date(now()).toISOString() });
    if (error.haltsJob) await store.putJsonIfAbsent(keys.halt(job.jobId), { reason: record.message, kind: record.kind, itemId: item.id });
    if (error.retryable && ctx.receiveCount < job.maxReceives) throw error;
    // Never sent because the job reached its cost cap: skipped, not failed.
    return finish({ ...blank, documents, status: error.code === "cost_cap" ? "skipped" : "failed", error: record });
  }
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
  answer: string;
  usage: Usage;
  costUsd: number;
  /** What the cache saved against paying full input price for every call. */
  cacheSavingsUsd: number;
  tier: string;
  finishReason: string | null;
  requestId: string | null;
  truncated: CallPlan["truncated"];
}

async function answerItem(deps: WorkerDeps, job: JobRecord, docs: PromptDocument[], ctx: TaskContext, now: () => number): Promise<ItemAnswer> {
  const model = getModel(deps.catalog, job.model);
  const questions = job.spec.calls === "per-question" && job.spec.questions ? job.spec.questions.map((q) => [q]) : [job.spec.questions];
  const parts: { id: string | null; result: ChatResult; plan: CallPlan }[] = [];
  // Sequential on purpose: the first call writes the cache the next ones read.
  for (const qs of questions) {
    const plan = planCall({ ...job.spec, questions: qs }, model, docs);
    deps.spend.check(job, priceFor(model, { inputTokens: plan.inputTokens, outputTokens: 0, cachedTokens: 0 }).costUsd);
    const result = await callModel(deps, job, plan, ctx, now);
    deps.spend.add(job, priceFor(model, { ...result.usage, cacheType: result.cacheType }).costUsd);
    parts.push({ id: questions.length > 1 ? qs![0]!.id : null, plan, result });
  }
  const join = (pick: (r: ChatResult) => string) =>
    parts.length === 1 ? pick(parts[0]!.result) : parts.map((p) => `## ${p.id}\n\n${pick(p.result)}`).join("\n\n");
  const priced = parts.map((p) => {
    const usage = { ...p.result.usage, cacheType: p.result.cacheType };
    return { actual: priceFor(model, usage), full: priceFor(model, { ...usage, cachedTokens: 0, cacheWriteTokens: 0 }) };
  });
  const costUsd = priced.reduce((s, p) => s + p.actual.costUsd, 0);
  const last = parts.at(-1)!.result;
  return {
    reasoning: join((r) => r.reasoning),
    answer: join((r) => r.answer),
    usage: parts.reduce((u, p) => addUsage(u, p.result.usage), zeroUsage()),
    costUsd,
    cacheSavingsUsd: priced.reduce((s, p) => s + p.full.costUsd, 0) - costUsd,
    tier: priced.reduce((a, b) => (b.actual.tierIndex > a.actual.tierIndex ? b : a)).actual.tier,
    finishReason: last.finishReason,
    requestId: last.requestId,
    truncated: parts[0]!.plan.truncated,
  };
}

async function callModel(deps: WorkerDeps, job: JobRecord, plan: CallPlan, ctx: TaskContext, now: () => number): Promise<ChatResult> {
  const { messages, inputTokens } = plan;
  const thinking = job.spec.thinking;
  const wanted = { maxOutputTokens: plan.maxOutputTokens, thinkingBudget: plan.thinkingBudget };
  const limiter = deps.limiterFor(job);
  return pRetry(
    async () => {
      const timeLeftMs = ctx.deadlineAt - now() - deps.deadlineMarginMs;
      const budget = budgetToDeadline(wanted, timeLeftMs, deps.decodeTokensPerSecond);
      if (!budget) throw new LongdocError("deadline", `only ${Math.round(timeLeftMs / 1000)} s left before the worker's deadline; returning the task to the queue`, { retryable: true });
      const signal = AbortSignal.timeout(Math.max(1, timeLeftMs));
      const reserved = inputTokens + budget.maxOutputTokens;
      await limiter.acquire(reserved, signal);
      const result = await deps.model.chat(
        {
          model: job.model,
          messages,
          maxOutputTokens: budget.maxOutputTokens,
          thinking: { enabled: thinking.enabled, budget: budget.thinkingBudget },
          json: job.outputSchema ? { schema: job.outputSchema } : undefined,
        },
        { signal },
      );
      limiter.settle(reserved, result.usage.inputTokens + result.usage.outputTokens);
      return result;
    },
    {
      retries: deps.retry.retries,
      minTimeout: deps.retry.minTimeoutMs,
      randomize: true,
      shouldRetry: ({ error }) => LongdocError.is(error) && error.retryable && error.code !== "deadline",
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        deps.log.warn({ jobId: job.jobId, attemptNumber, retriesLeft, code: LongdocError.is(error) ? error.code : "internal" }, "model call failed");
      },
    },
  );
}
