import { checkFits, withMargin } from "./budget.ts";
import type { ModelInfo } from "./catalog.ts";
import type { ChatRequest } from "./client.ts";
import { BudgetError, LongdocError } from "../errors.ts";
import type { PlanSpec } from "./spec.ts";
import { citationInstruction } from "../citations/instruction.ts";
import { buildMessages, promptLayout, type ChatMessage, type PromptDocument, type PromptLayout } from "./prompt.ts";
import { countTokens, TURN_END, turnStart } from "../tokens/index.ts";
import { countChatJoined, countJoined } from "../tokens/join.ts";

/** One model call, ready to send: the messages, their exact token count and the output caps. */
export interface CallPlan {
  messages: ChatMessage[];
  inputTokens: number;
  maxOutputTokens: number;
  thinkingBudget: number | undefined;
  /** Set when `truncate: middle` had to cut a document to fit. */
  truncated: { source: string; tokensCut: number } | null;
  /** Tokens of the shared prefix (system prompt and documents) that calls over the same documents can reuse from the cache. */
  prefixTokens: number;
  /** Whether the prefix carries an explicit cache_control marker. */
  explicitCache: boolean;
  /** Tokens the citation instruction adds to this prompt (`citations: verify`; 0 otherwise): counted in inputTokens. */
  citationTokens?: number;
  /** Tools, tool_choice and seed for this call: set by the samples and the code tool loop (shared/worker/tool-loop.ts). */
  extras?: Pick<ChatRequest, "tools" | "toolChoice" | "seed" | "sampling">;
}

/** The provider's minimum for an explicit cache block (reference §8); below it a marker buys nothing. */
export const EXPLICIT_CACHE_MIN_TOKENS = 1024;


/**
 * The prompt's ChatML tokens, as countChatTokens counts buildMessages' messages, reusing each
 * document's known count (tokens/join.ts): a 1 MB document is not counted a second time.
 */
function promptTokens(layout: PromptLayout): { inputTokens: number; prefixTokens: number } {
  return {
    inputTokens: countChatJoined([
      { role: "system", parts: [layout.system] },
      { role: "user", parts: [...layout.body, layout.tail] },
    ]),
    // The shared prefix (system prompt and documents) that calls over the same documents reuse from the cache.
    prefixTokens: countJoined([turnStart("system"), layout.system, TURN_END, turnStart("user"), ...layout.body]),
  };
}

/**
 * Builds the call for an item's documents and checks it fits the model's maximum input and
 * context. When it does not, the item fails with the numbers, unless the job opted into
 * `truncate: middle`, which cuts the middle of the largest document and says so in the text.
 * The worker and `longdoc estimate` share this, so an estimate counts what the worker sends.
 */
export function planCall(planned: PlanSpec, model: ModelInfo, docs: PromptDocument[]): CallPlan {
  const spec = withQuestionThinking(planned);
  if (spec.thinking.enabled && model.thinking === "none") {
    throw new LongdocError("job_invalid", `${model.id} has no thinking mode; set thinking.enabled: false or choose a hybrid model`);
  }
  const maxOutputTokens = Math.min(spec.maxOutputTokens, spec.thinking.enabled ? model.maxOutputTokensThinking : model.maxOutputTokens);
  // A budget the job sets is reserved in full; without one, thinking gets what the context leaves.
  const explicitThinking = spec.thinking.enabled && spec.thinking.budget !== undefined ? Math.min(spec.thinking.budget, model.maxThinkingBudget) : undefined;
  // An estimated count (a tokenizer longdoc does not carry) must fit with its safety margin.
  const limit = Math.floor(Math.min(model.maxInputTokens, model.contextTokens - maxOutputTokens - (explicitThinking ?? 0)) / (1 + (model.countMargin ?? 0)));
  let sent = docs;
  let layout = promptLayout(spec, sent);
  let counts = promptTokens(layout);
  let truncated: CallPlan["truncated"] = null;
  if (counts.inputTokens > limit && spec.truncate === "middle") {
    const cut = truncateMiddle(docs, counts.inputTokens - limit, (d) => promptTokens(promptLayout(spec, d)).inputTokens <= limit, { model: model.id, limit });
    sent = cut.docs;
    layout = promptLayout(spec, sent);
    counts = promptTokens(layout);
    truncated = cut.truncated;
  }
  const { inputTokens, prefixTokens } = counts;
  checkFits(model, inputTokens, { maxOutputTokens, thinkingBudget: explicitThinking });
  const thinkingBudget = !spec.thinking.enabled
    ? undefined
    : (explicitThinking ?? Math.max(1, Math.min(model.maxThinkingBudget, model.contextTokens - withMargin(model, inputTokens) - maxOutputTokens)));
  const explicitCache = spec.cache === "explicit" && prefixTokens >= EXPLICIT_CACHE_MIN_TOKENS;
  const messages = buildMessages(spec, sent, { explicitCache, layout });
  return { messages, inputTokens, maxOutputTokens, thinkingBudget, truncated, prefixTokens, explicitCache, citationTokens: citationTokens(spec, sent, layout) };
}

/**
 * Exactly what the citation instruction adds: the instruction closes the prompt's tail, so the
 * counts with and without it differ only after the last document's closing tag (a cut of
 * tokens/join.ts: it starts a line), and only that end of the prompt is counted twice.
 */
function citationTokens(spec: PlanSpec, docs: PromptDocument[], layout: PromptLayout): number {
  if (spec.citations !== "verify") return 0;
  const added = `\n\n${citationInstruction(docs)}`;
  if (!layout.tail.endsWith(added)) throw new LongdocError("internal", "the citation instruction is not at the end of the prompt");
  const last = layout.body.at(-1);
  const closing = typeof last === "string" ? last.replace(/^\n/, "") : "";
  return countTokens(closing + layout.tail + TURN_END) - countTokens(closing + layout.tail.slice(0, -added.length) + TURN_END);
}

/**
 * The model an item runs on, chosen when it is planned: the job's `model`, or the `fallback` (the
 * job's fallbackModel, a model with a larger input) when one of the item's calls would not fit
 * `model` whole. `truncate: middle` then applies on the fallback, not before it. The worker and
 * `longdoc estimate` both choose here, so an estimate names and prices the model the item will use.
 */
export function modelForItem(specs: PlanSpec[], model: ModelInfo, fallback: ModelInfo | undefined, docs: PromptDocument[]): ModelInfo {
  if (!fallback) return model;
  try {
    for (const spec of specs) planCall({ ...spec, truncate: "none" }, model, docs);
    return model;
  } catch (e) {
    if (e instanceof BudgetError) return fallback;
    throw e;
  }
}

/** A call asking one question that sets its own `thinking` uses it instead of the job's. */
export function withQuestionThinking<S extends PlanSpec>(spec: S): S {
  const own = spec.questions?.length === 1 ? spec.questions[0]!.thinking : undefined;
  return own ? { ...spec, thinking: own } : spec;
}

/** The marker left where text was cut; the model and the reader both see how much is missing. */
export const truncationMarker = (tokens: number) => `\n\n[... ${tokens} tokens cut from the middle of this document by longdoc (truncate: middle) ...]\n\n`;

/**
 * Cuts the middle of the largest document until `fits` holds. Keeps the head and tail (cover
 * pages and summaries, notes and signatures). Token counting is exact, so a few passes of
 * estimate-and-recount converge quickly.
 */
function truncateMiddle(docs: PromptDocument[], excessTokens: number, fits: (docs: PromptDocument[]) => boolean, ctx: { model: string; limit: number }) {
  const largest = docs.reduce((a, b) => (b.text.length > a.text.length ? b : a));
  const text = largest.text;
  const total = Math.max(1, countTokens(text));
  const charsPerToken = text.length / total;
  let cutTokens = excessTokens + 64;
  for (let pass = 0; pass < 12; pass++) {
    const cutChars = Math.min(text.length, Math.ceil(cutTokens * charsPerToken * 1.02));
    const start = Math.floor((text.length - cutChars) / 2);
    const removed = text.slice(start, start + cutChars);
    const tokensCut = countTokens(removed);
    const kept = text.slice(0, start) + truncationMarker(tokensCut) + text.slice(start + cutChars);
    // The cut document's known count no longer holds: it is counted afresh.
    const next = docs.map((d) => (d === largest ? { source: d.source, text: kept } : d));
    if (fits(next)) return { docs: next, truncated: { source: largest.source, tokensCut } };
    if (cutChars === text.length) break;
    cutTokens = Math.ceil(cutTokens * 1.1) + 64;
  }
  throw new BudgetError(`even with the middle of ${largest.source} cut, the prompt does not fit in ${ctx.limit} tokens`, { tokens: excessTokens + ctx.limit, limit: ctx.limit, model: ctx.model });
}
