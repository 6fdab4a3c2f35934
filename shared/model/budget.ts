import { BudgetError } from "../errors.ts";

export interface ModelLimits {
  id: string;
  contextTokens: number;
  maxInputTokens: number;
  maxOutputTokens: number;
  maxOutputTokensThinking: number;
  maxThinkingBudget: number;
  /**
   * Safety margin on longdoc's token counts when the model's tokenizer is not the one longdoc
   * carries (0.1 = counts are estimates, budgets add 10 %); 0 or absent = exact counts.
   */
  countMargin?: number;
}

/** The input tokens a budget must assume: the count, plus the margin when the count is an estimate. */
export const withMargin = (model: Pick<ModelLimits, "countMargin">, tokens: number) =>
  // (rounded first: 950000 × 1.1 is 1045000.0000000001 in binary floating point)
  Math.ceil(Number((tokens * (1 + (model.countMargin ?? 0))).toFixed(6)));

const estimateNote = (model: Pick<ModelLimits, "countMargin" | "id">, tokens: number) =>
  model.countMargin ? ` (an estimate: longdoc does not carry ${model.id}'s tokenizer, so ${tokens} counted with Qwen3's plus a ${Math.round(model.countMargin * 100)} % safety margin)` : "";

export interface CallBudget {
  maxOutputTokens: number;
  thinkingBudget: number | undefined;
  /** True when the time left in the worker, not the job, set the output caps. */
  limitedByDeadline: boolean;
}

/**
 * Checks that a prompt of `inputTokens` fits the model: within its maximum input, and with the
 * reserved answer and thinking budget within its context. Throws `input_too_long` with numbers.
 */
export function checkFits(model: ModelLimits, inputTokens: number, reserved: { maxOutputTokens: number; thinkingBudget?: number }): void {
  const counted = inputTokens;
  inputTokens = withMargin(model, counted);
  if (inputTokens > model.maxInputTokens) {
    throw new BudgetError(
      `the prompt is ${inputTokens} tokens${estimateNote(model, counted)}; ${model.id} accepts at most ${model.maxInputTokens} input tokens`,
      { tokens: inputTokens, limit: model.maxInputTokens, model: model.id },
    );
  }
  const total = inputTokens + reserved.maxOutputTokens + (reserved.thinkingBudget ?? 0);
  if (total > model.contextTokens) {
    throw new BudgetError(
      `the prompt (${inputTokens} tokens${estimateNote(model, counted)}) plus the reserved output (${reserved.maxOutputTokens}) and thinking budget (${reserved.thinkingBudget ?? 0}) is ${total} tokens; ${model.id}'s context is ${model.contextTokens}`,
      { tokens: total, limit: model.contextTokens, model: model.id },
    );
  }
}

/**
 * Caps the output to what the model can decode before the worker's deadline, so a call never
 * runs into the Lambda timeout. Thinking is cut before the answer. Returns undefined when too
 * little time is left to be worth starting (the task should go back to the queue).
 */
export function budgetToDeadline(
  want: { maxOutputTokens: number; thinkingBudget?: number },
  timeLeftMs: number,
  decodeTokensPerSecond: number,
  minTokens = 256,
): CallBudget | undefined {
  const affordable = Math.floor((timeLeftMs / 1000) * decodeTokensPerSecond);
  if (affordable < minTokens) return undefined;
  const thinking = want.thinkingBudget ?? 0;
  if (want.maxOutputTokens + thinking <= affordable) {
    return { maxOutputTokens: want.maxOutputTokens, thinkingBudget: want.thinkingBudget, limitedByDeadline: false };
  }
  const answer = Math.min(want.maxOutputTokens, Math.max(minTokens, Math.floor(affordable / 2)));
  const think = want.thinkingBudget === undefined ? undefined : Math.max(1, affordable - answer);
  return { maxOutputTokens: answer, thinkingBudget: think, limitedByDeadline: true };
}

/** How fast a model reads a prompt and writes its output: measured, or the catalog's assumption. */
export interface ModelSpeed {
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  /** Where the figures came from: the fleet's rolling measurement, or the catalog. */
  source: "measured" | "catalog";
}

/** The share of the time after prefill that a call's output is sized to fill. */
export const DECODE_TIME_SHARE = 0.8;

/** Seconds before the first token of a prompt of `inputTokens`, none of it assumed cached. */
export const prefillMs = (inputTokens: number, speed: Pick<ModelSpeed, "prefillTokensPerSecond">) => (inputTokens / speed.prefillTokensPerSecond) * 1000;

/**
 * The output caps for a call that starts now with `timeLeftMs` before the worker must stop:
 * the prompt's prefill time comes off first (it grows with the input), the rest is decoded at the
 * model's speed. Undefined when too little is left to be worth starting.
 */
export function budgetForCall(
  want: { maxOutputTokens: number; thinkingBudget?: number },
  o: { timeLeftMs: number; inputTokens: number; speed: ModelSpeed },
): (CallBudget & { prefillMs: number; affordableTokens: number }) | undefined {
  const prefill = prefillMs(o.inputTokens, o.speed);
  // Speeds vary from call to call: plan to use only part of the decode time.
  const decodeMs = (o.timeLeftMs - prefill) * DECODE_TIME_SHARE;
  const b = budgetToDeadline(want, decodeMs, o.speed.decodeTokensPerSecond);
  if (!b) return undefined;
  return { ...b, prefillMs: Math.round(prefill), affordableTokens: Math.floor((decodeMs / 1000) * o.speed.decodeTokensPerSecond) };
}

/**
 * The request's `max_completion_tokens`: since 2026-04-20 Model Studio caps reasoning and answer
 * together with it, and `max_tokens` is deprecated (docs/qwen-api.md §3), so the cap is sized as
 * the thinking budget plus the answer cap.
 */
export function completionCap(req: { maxOutputTokens: number; thinking: { enabled: boolean; budget?: number }; maxCompletionTokens?: number }): number {
  if (req.maxCompletionTokens !== undefined) return req.maxCompletionTokens;
  if (!req.thinking.enabled) return req.maxOutputTokens;
  // Without a budget the model could think up to its maximum and leave nothing for the answer.
  if (!req.thinking.budget) throw new Error("a thinking call needs its thinking budget to size max_completion_tokens (answer cap + thinking budget)");
  return req.maxOutputTokens + req.thinking.budget;
}
