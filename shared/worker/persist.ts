/**
 * The persist step: the item's files from its outcome. The answer, its reasoning trace, sample
 * and per-document files, then the attempt's record naming them, then result.json, which carries
 * every attempt's cost (the ones before this delivery's included). Writes after a paid answer are
 * retried in place when S3 fails (keepPaid).
 */
import type { ErrorCode } from "../errors.ts";
import { zeroUsage } from "../model/client.ts";
import { splitPerDocument } from "../model/prompt.ts";
import type { ItemResult } from "../run/manifest.ts";
import { keys } from "../run/store.ts";
import { earlierAttempts } from "./attempt.ts";
import { logContext, type Delivery } from "./delivery.ts";
import type { Answered, Ended, ItemAnswer, Outcome } from "./outcome.ts";
import { keepPaid } from "./paid.ts";
import { realtimeReason } from "../run/batch-records.ts";
import { sampleFiles, samplingSummary } from "./samples.ts";

type ResultFields = Omit<ItemResult, "version" | "id" | "attempts" | "deliveries" | "model" | "startedAt" | "finishedAt" | "durationMs" | "usage" | "cost" | "currency" | "costUsd">;

export async function persist(d: Delivery, outcome: Outcome): Promise<ItemResult> {
  const fields = outcome.kind === "answered" ? await writeAnswer(d, outcome) : await closeEnded(d, outcome);
  return writeResult(d, fields);
}

/** The answer's files and the attempt that made them; the item fails when the answer is cut, invalid or disputed. */
async function writeAnswer(d: Delivery, outcome: Answered): Promise<ResultFields> {
  const { job, item, store } = d;
  const a = outcome.answer;
  const json = job.spec.output.format === "json";
  // answer.json only ever holds a document that passed the schema; one that never did is kept beside it.
  const answerFile = !json ? "answer.md" : a.validationError ? "answer.invalid.json" : "answer.json";
  const answerPath = `items/${item.id}/${answerFile}`;
  const reasoningPath = a.hasReasoning ? `items/${item.id}/reasoning.md` : null;
  const put = (file: string, body: string, type: string) => keepPaid(() => store.put(keys.item(job.jobId, item.id, file), body, type));
  const packed = job.spec.packing === "packed" && item.documents.length > 1 ? await writeDocumentAnswers(d, a.answer) : null;
  const sampled = a.sampling.length ? samplingSummary(a.sampling, job.spec.minAgreement) : null;
  for (const f of a.sampling.length ? sampleFiles(item.id, a.sampling, json) : []) await put(f.file, f.body, f.contentType);
  const cited = outcome.cited;
  const error = outputError(d, a, answerPath, packed?.error ?? null) ?? sampled?.low ?? cited?.ungrounded ?? null;
  d.deps.log.info({ ...logContext(d), usage: a.usage, cost: a.cost, finishReasons: a.finishReasons }, "item answered");
  // The attempt's record, naming the final files, is written beside them; result.json comes after both.
  await d.steps.time("write", () =>
    Promise.all([
      put(answerFile, a.answer, json ? "application/json" : "text/markdown; charset=utf-8"),
      // Without thinking there is no trace at all: no reasoning.md of empty headings.
      a.hasReasoning && put("reasoning.md", a.reasoning, "text/markdown; charset=utf-8"),
      // The pages the citations name, as the model saw them, for the report.
      cited && put("cited-pages.json", JSON.stringify({ places: cited.places }), "application/json"),
      closeAttempt(d, error ? "failed" : "succeeded", error, { reasoning: reasoningPath, answer: answerPath }),
    ]),
  );
  const keepTruncated = a.cutCalls.length > 0 && job.spec.output.onTruncated === "keep";
  return {
    documents: outcome.documents,
    status: error ? "failed" : "succeeded",
    error,
    cacheSavings: a.cacheSavings,
    cacheSavingsUsd: d.currency === "USD" ? a.cacheSavings : null,
    tier: a.tier,
    finishReason: a.finishReasons.at(-1) ?? null,
    finishReasons: a.finishReasons,
    ...(keepTruncated ? { answerTruncated: true } : {}),
    ...(a.repaired ? { repaired: true } : {}),
    ...(json && a.validationError ? { invalidAnswer: answerPath } : {}),
    requestId: a.requestId,
    answer: json && a.validationError ? null : answerPath,
    reasoning: reasoningPath,
    truncated: a.truncated,
    documentAnswers: packed?.answers ?? null,
    ...(sampled ? { ...sampled.summary, trace: `items/${item.id}/trace.json` } : {}),
    ...(cited ? { citations: cited.citations } : {}),
  };
}

/** Why an answer that came back still fails its item: cut at the cap (and not kept), not valid JSON, or a packed answer missing a document. */
function outputError(d: Delivery, a: ItemAnswer, answerPath: string, packedError: string | null): { kind: ErrorCode; message: string } | null {
  const cut = a.cutCalls.length > 0;
  if (cut && d.job.spec.output.onTruncated !== "keep") return { kind: "output_truncated", message: truncationMessage(a, answerPath) };
  if (a.validationError) return { kind: "output_invalid", message: a.validationError };
  if (packedError) return { kind: "output_invalid", message: packedError };
  return null;
}

/** An item that ended without an answer: its attempt (if it made one) keeps the error beside its partial trace. */
async function closeEnded(d: Delivery, outcome: Ended): Promise<ResultFields> {
  await closeAttempt(d, "failed", outcome.error);
  return {
    documents: outcome.documents ?? d.documents ?? d.item.documents.map((doc) => ({ source: doc.source })),
    status: outcome.status,
    error: outcome.error,
    tier: null,
    finishReason: null,
    requestId: null,
    answer: null,
    reasoning: null,
  };
}

async function closeAttempt(d: Delivery, status: "succeeded" | "failed", error: { kind: ErrorCode; message: string } | null, final?: { reasoning: string | null; answer: string | null }) {
  const closed = await keepPaid(() => d.recorder.close(status, error, final));
  if (closed) d.pending.add("removing the attempt's partial files", closed.removeSuperseded);
}

/** result.json, once: every attempt's calls are paid for, the failed ones and the ones a dead worker left. */
async function writeResult(d: Delivery, fields: ResultFields): Promise<ItemResult> {
  const { job, item, store } = d;
  const attempts = d.recorder.closed?.attempt ?? d.claimed.attempts;
  const spent = await earlierAttempts(store, job.jobId, item.id, attempts + 1, d.recorder.closed);
  const finishedAt = d.now();
  const result: ItemResult = {
    version: 1,
    id: item.id,
    attempts: Math.max(1, attempts),
    deliveries: d.claimed.deliveries,
    // A batch job's item: answered by the batch alone, or with a call made realtime (a fallback).
    ...(job.spec.mode === "batch" ? await batchMode(d) : {}),
    model: d.model?.id ?? job.model,
    startedAt: new Date(d.startedAt).toISOString(),
    ...fields,
    usage: spent.usage.inputTokens > 0 || spent.cost > 0 ? spent.usage : zeroUsage(),
    cost: spent.cost,
    currency: d.currency,
    costUsd: d.currency === "USD" ? spent.cost : null,
    ...(spent.estimated ? { usageEstimated: true } : {}),
    finishedAt: new Date(finishedAt).toISOString(),
    durationMs: finishedAt - d.startedAt,
  };
  await d.steps.time("write", () => keepPaid(() => store.putJsonIfAbsent(keys.item(job.jobId, item.id, "result.json"), result)));
  return result;
}

/** A batch job's item: answered by the batch alone, or with realtime calls (and why). */
async function batchMode(d: Delivery): Promise<Pick<ItemResult, "mode" | "modeReason">> {
  if (!d.recorder.closed) return { mode: "batch" };
  const reason = await realtimeReason(d.store, d.job.jobId, d.item.id);
  return { mode: "realtime", ...(reason ? { modeReason: reason } : {}) };
}

/** Maps a packed answer back to its documents: items/<itemId>/answers/<n>.md per document. */
async function writeDocumentAnswers(d: Delivery, answer: string) {
  const { job, item, store } = d;
  const parts = splitPerDocument(answer);
  const answers: { source: string; answer: string | null }[] = [];
  for (const [i, doc] of item.documents.entries()) {
    const text = parts.get(i + 1);
    const file = `answers/${i + 1}.md`;
    if (text !== undefined) await keepPaid(() => store.put(keys.item(job.jobId, item.id, file), text, "text/markdown; charset=utf-8"));
    answers.push({ source: doc.source, answer: text === undefined ? null : `items/${item.id}/${file}` });
  }
  const missing = answers.filter((a) => a.answer === null).map((a) => a.source);
  const error = missing.length ? `the packed answer has no <answer document="N"> section for: ${missing.join(", ")}` : null;
  return { answers, error };
}

/** What a user reads when an answer hit the output cap. */
function truncationMessage(a: ItemAnswer, answerPath: string): string {
  const which = a.cutCalls.map((c) => (c.repair ? "the JSON repair call" : c.id ? `the answer to question '${c.id}'` : "the answer")).join(", ");
  const cap = Math.max(...a.cutCalls.map((c) => c.maxOutputTokens));
  return (
    `${which} hit the output cap (max ${cap} tokens, finish_reason "length") and was cut off; the partial answer is kept at ${answerPath}. ` +
    "Raise maxOutputTokens (or re-run it with 'longdoc retry <jobId> --max-output-tokens N'), or set output.onTruncated: keep to accept truncated answers" +
    (a.continuations > 0 ? ` (it was continued ${a.continuations} time(s), the most output.onTruncated: continue asks for)` : "")
  );
}
