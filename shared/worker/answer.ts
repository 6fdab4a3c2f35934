/**
 * The answer step: read the item's documents whole, plan its calls (one, or one per question over
 * the same cached prefix), ask the model (with samples, tools, continuations and a JSON repair
 * where the job asks for them) and return what it said. It writes no item files: its calls go
 * through callModel, which keeps each paid call in the journal and streams to the attempt's trace.
 */
import { createHash } from "node:crypto";
import { verifyItemCitations } from "../citations/gate.ts";
import { loadDocument } from "../documents/index.ts";
import { DocumentError } from "../errors.ts";
import { planBatchCall, readBatchRequest, type BatchRequest } from "../job/batch.ts";
import { parseS3Uri } from "../job/record.ts";
import { validateAnswer } from "../job/output.ts";
import { getModel, priceFor, type ModelInfo } from "../model/catalog.ts";
import { addUsage, zeroUsage, type ChatResult } from "../model/client.ts";
import { modelForItem, planCall, type CallPlan } from "../model/plan.ts";
import { messageText, type ChatMessage, type PromptDocument } from "../model/prompt.ts";
import { ObjectStore } from "../run/store.ts";
import { countChatTokens, countTokens } from "../tokens/index.ts";
import { callModel } from "./call.ts";
import type { Delivery, DocumentInfo } from "./delivery.ts";
import type { Answered, ItemAnswer, MadeCall } from "./outcome.ts";
import { sampleCall, usesSampling, type SampledResult } from "./samples.ts";

/** How many times `output.onTruncated: continue` asks the model to go on with one answer. */
export const MAX_CONTINUATIONS = 3;
/** The instruction of a JSON repair call; the simulator and tests recognise it by its first words. */
export const REPAIR_INSTRUCTION = "Your previous answer does not match the required JSON schema.";

export async function answer(d: Delivery): Promise<Answered> {
  const loaded = await readDocuments(d);
  d.documents = loaded.map((l) => l.info);
  // An OpenAI Batch line brings its own messages instead of documents.
  const request = d.item.request ? await readBatchRequest(d.store, d.item.request) : undefined;
  const model = chooseModel(d, loaded.map((l) => l.doc), request);
  const { parts, calls } = await askQuestions(d, model, loaded.map((l) => l.doc), request);
  const checked = await checkJson(d, model, parts, calls);
  const answered = summarize(model, parts, calls, checked);
  // Each quote is checked against the text the model saw (a batch line brings no documents).
  const cited = request ? null : verifyItemCitations(d.job.spec, answered.answer, loaded.map((l) => l.doc));
  return { kind: "answered", documents: d.documents, answer: answered, cited };
}

/** The job's model, or its fallbackModel when the item's prompt would not fit the model whole; the item is priced and named with it. */
function chooseModel(d: Delivery, docs: PromptDocument[], request: BatchRequest | undefined): ModelInfo {
  const spec = d.job.spec;
  const jobModel = getModel(d.deps.catalog, d.job.model);
  const fallback = spec.fallbackModel && !request ? getModel(d.deps.catalog, spec.fallbackModel) : undefined;
  const questions = spec.calls === "per-question" && spec.questions ? spec.questions.map((q) => [q]) : [spec.questions];
  const model = modelForItem(questions.map((qs) => ({ ...spec, questions: qs })), jobModel, fallback, docs);
  d.model = model;
  return model;
}

/** Reads every document of the item from S3 (all at once), then extracts and counts each. */
async function readDocuments(d: Delivery): Promise<{ doc: PromptDocument; info: DocumentInfo }[]> {
  const bytes = await d.steps.time("read", () =>
    Promise.all(d.item.documents.map((doc) => { const { bucket, key } = parseS3Uri(doc.uri); return new ObjectStore(d.deps.s3, bucket).getBytes(key); })),
  );
  return d.steps.time("extract", () => Promise.all(d.item.documents.map((doc, i) => extract(doc, bytes[i], d.job.limits.maxDocumentBytes))));
}

async function extract(doc: { source: string; uri: string }, bytes: Uint8Array | undefined, maxBytes: number) {
  if (!bytes) throw new DocumentError("document_missing", `${doc.source}: not found at ${doc.uri}`);
  const loaded = await loadDocument({ bytes, name: doc.source }, { maxBytes });
  const sha256 = createHash("sha256").update(loaded.text).digest("hex");
  const tokens = countTokens(loaded.text);
  return {
    // The count and the hash go with the text, so planning the call does not count or hash it again.
    doc: { source: doc.source, text: loaded.text, tokens, sha256 } satisfies PromptDocument,
    info: { source: doc.source, format: loaded.format, bytes: loaded.bytes, chars: loaded.chars, tokens, sha256 },
  };
}

/** Each question (or the item's one call): planned, asked, continued where the cap cut it. Sequential: the first call writes the cache the next ones read. */
async function askQuestions(d: Delivery, model: ModelInfo, docs: PromptDocument[], request: BatchRequest | undefined) {
  const spec = d.job.spec;
  const questions = spec.calls === "per-question" && spec.questions ? spec.questions.map((q) => [q]) : [spec.questions];
  const parts: MadeCall[] = [];
  const calls: MadeCall[] = [];
  for (const [i, qs] of questions.entries()) {
    const plan = d.steps.timeSync("plan", () => (request ? planBatchCall(request, model, spec) : planCall({ ...spec, questions: qs }, model, docs)));
    const id = questions.length > 1 ? qs![0]!.id : null;
    // Once a call of this item is paid for, later calls wait in process rather than hand it back.
    const call = (p: CallPlan, label: string | null, first: boolean) => callModel(d, model, p, { label, maxWaitMs: first && i === 0 ? d.deps.timing.maxInProcessWaitMs : 60_000 });
    if (usesSampling(d.job)) {
      const result = await sampleCall({
        job: d.job,
        plan,
        question: id,
        first: i === 0,
        timeLeftMs: () => d.ctx.deadlineAt - d.now() - d.deps.timing.deadlineMarginMs,
        fits: (tokens, maxOut) => tokens <= Math.min(model.maxInputTokens, model.contextTokens - maxOut),
        call: (p, first, label) => call(p, [id, label].filter(Boolean).join(" ") || null, first),
      });
      calls.push({ id, plan, result });
      parts.push({ id, plan, result });
      continue;
    }
    const made = await askWithContinuations(model, plan, id, spec.output.onTruncated === "continue", call);
    calls.push(...made.calls);
    parts.push({ id, plan, result: made.joined });
  }
  return { parts, calls };
}

/** One call, and while its answer was cut at the cap (and the job says continue), the next piece. */
async function askWithContinuations(
  model: ModelInfo,
  plan: CallPlan,
  id: string | null,
  continueCut: boolean,
  call: (p: CallPlan, label: string | null, first: boolean) => Promise<ChatResult>,
): Promise<{ joined: ChatResult; calls: MadeCall[] }> {
  const calls: MadeCall[] = [];
  let joined = await call(plan, id, true);
  let last = { plan, result: joined };
  for (let k = 1; last.result.finishReason === "length" && continueCut && k <= MAX_CONTINUATIONS; k++) {
    const next = planFollowUp(model, plan, [{ role: "assistant", content: joined.answer, partial: true }]);
    if (!next) break;
    calls.push({ id, ...last, continued: true });
    const more = await call(next, `${id ?? "answer"} (continued ${k})`, false);
    joined = { ...more, reasoning: joined.reasoning + more.reasoning, answer: joined.answer + more.answer, usage: addUsage(joined.usage, more.usage) };
    last = { plan: next, result: more };
  }
  calls.push({ id, ...last });
  return { joined, calls };
}

/** JSON: an answer that fails the schema gets one repair call over the same messages (the same cached prefix). */
async function checkJson(d: Delivery, model: ModelInfo, parts: MadeCall[], calls: MadeCall[]): Promise<{ answer: string | null; validationError: string | null; repaired: boolean }> {
  const schema = d.job.outputSchema;
  if (!schema || parts.length !== 1) return { answer: null, validationError: null, repaired: false };
  const first = parts[0]!;
  const problem = validateAnswer(first.result.answer, schema);
  if (!problem) return { answer: null, validationError: null, repaired: false };
  // A cut answer fails output_truncated: a repair under the same cap would be cut off too.
  if (first.result.finishReason === "length" && d.job.spec.output.onTruncated !== "keep") return { answer: null, validationError: problem, repaired: false };
  const repairPlan = planFollowUp(model, first.plan, [
    { role: "assistant", content: first.result.answer },
    { role: "user", content: `${REPAIR_INSTRUCTION} What is wrong with it: ${problem}\n\nReply with only the corrected JSON document, valid against the schema, keeping everything that was right.` },
  ]);
  if (!repairPlan) return { answer: null, validationError: `${problem} (no repair call: the prompt with the bad answer would not fit the model's context)`, repaired: false };
  const r = await callModel(d, model, repairPlan, { label: "repair", maxWaitMs: 60_000 });
  calls.push({ id: null, plan: repairPlan, result: r, repair: true });
  const after = validateAnswer(r.answer, schema);
  return after
    ? { answer: r.answer, validationError: `${problem}; the repair call's answer still fails: ${after.replace(/^the answer /, "")}`, repaired: false }
    : { answer: r.answer, validationError: null, repaired: true };
}

/** The plan's messages followed by `more` (a partial answer to continue, or a repair request); null when it cannot fit. */
function planFollowUp(model: ModelInfo, plan: CallPlan, more: ChatMessage[]): CallPlan | null {
  const messages = [...plan.messages, ...more];
  const inputTokens = countChatTokens(messages.map((m) => ({ role: m.role, content: messageText(m) })));
  if (inputTokens > Math.min(model.maxInputTokens, model.contextTokens - plan.maxOutputTokens)) return null;
  return { ...plan, messages, inputTokens };
}

/** The item's answer from its calls: texts joined per question, every call priced at its own tier. */
function summarize(model: ModelInfo, parts: MadeCall[], calls: MadeCall[], checked: { answer: string | null; validationError: string | null; repaired: boolean }): ItemAnswer {
  const join = (pick: (r: ChatResult) => string) => (parts.length === 1 ? pick(parts[0]!.result) : parts.map((p) => `## ${p.id}\n\n${pick(p.result)}`).join("\n\n"));
  // A sampled result stands for several real calls: each is priced at its own tier.
  const priced = calls.flatMap((p) => (p.result as Partial<SampledResult>).calls ?? [p.result]).map((r) => {
    const usage = { ...r.usage, cacheType: r.cacheType };
    return { actual: priceFor(model, usage), full: priceFor(model, { ...usage, cachedTokens: 0, cacheWriteTokens: 0 }) };
  });
  const cost = priced.reduce((s, p) => s + p.actual.cost, 0);
  return {
    reasoning: join((r) => r.reasoning),
    hasReasoning: parts.some((p) => p.result.reasoning.trim() !== ""),
    answer: checked.answer ?? join((r) => r.answer),
    usage: calls.reduce((u, p) => addUsage(u, p.result.usage), zeroUsage()),
    cost,
    cacheSavings: priced.reduce((s, p) => s + p.full.cost, 0) - cost,
    tier: priced.reduce((a, b) => (b.actual.tierIndex > a.actual.tierIndex ? b : a)).actual.tier,
    finishReasons: calls.map((p) => p.result.finishReason),
    continuations: calls.filter((p) => p.continued).length,
    cutCalls: calls.filter((p) => p.result.finishReason === "length" && !p.continued).map((p) => ({ id: p.id, repair: p.repair === true, maxOutputTokens: p.plan.maxOutputTokens })),
    requestId: calls.at(-1)!.result.requestId,
    truncated: parts[0]!.plan.truncated,
    validationError: checked.validationError,
    repaired: checked.repaired,
    sampling: parts.flatMap((p) => ((p.result as Partial<SampledResult>).sampling ? [(p.result as SampledResult).sampling] : [])),
  };
}
