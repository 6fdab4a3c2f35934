import { BudgetError } from "../errors.ts";

export interface ModelLimits {
  id: string;
  contextTokens: number;
  maxInputTokens: number;
  maxOutputTokens: number;
  maxOutputTokensThinking: number;
  maxThinkingBudget: number;
}

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
  if (inputTokens > model.maxInputTokens) {
    throw new BudgetError(
      `the prompt is ${inputTokens} tokens; ${model.id} accepts at most ${model.maxInputTokens} input tokens`,
      { tokens: inputTokens, limit: model.maxInputTokens, model: model.id },
    );
  }
  const total = inputTokens + reserved.maxOutputTokens + (reserved.thinkingBudget ?? 0);
  if (total > model.contextTokens) {
    throw new BudgetError(
      `the prompt (${inputTokens} tokens) plus the reserved output (${reserved.maxOutputTokens}) and thinking budget (${reserved.thinkingBudget ?? 0}) is ${total} tokens; ${model.id}'s context is ${model.contextTokens}`,
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
