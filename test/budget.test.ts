import { describe, expect, it } from "vitest";
import { budgetToDeadline, checkFits, type ModelLimits } from "../shared/budget.ts";
import { BudgetError } from "../shared/errors.ts";

const qwen: ModelLimits = { id: "qwen3-max", contextTokens: 262_144, maxInputTokens: 258_048, maxOutputTokens: 65_536, maxOutputTokensThinking: 32_768, maxThinkingBudget: 81_920 };

describe("fitting a prompt into the model", () => {
  it("accepts a prompt of exactly the maximum input and refuses one token more, with the numbers", () => {
    expect(() => checkFits(qwen, 258_048, { maxOutputTokens: 4096 })).not.toThrow();
    let error: unknown;
    try {
      checkFits(qwen, 258_049, { maxOutputTokens: 4096 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BudgetError);
    expect(error).toMatchObject({ code: "input_too_long", tokens: 258_049, limit: 258_048, model: "qwen3-max" });
    expect((error as Error).message).toBe("the prompt is 258049 tokens; qwen3-max accepts at most 258048 input tokens");
  });

  it("counts the reserved output and thinking against the context", () => {
    expect(() => checkFits(qwen, 250_000, { maxOutputTokens: 12_144 })).not.toThrow();
    expect(() => checkFits(qwen, 250_000, { maxOutputTokens: 12_145 })).toThrow(/is 262145 tokens; qwen3-max's context is 262144/);
    expect(() => checkFits(qwen, 200_000, { maxOutputTokens: 4096, thinkingBudget: 58_049 })).toThrow(BudgetError);
  });
});

describe("sizing the output to the worker's deadline", () => {
  it("keeps the job's caps when there is time", () => {
    expect(budgetToDeadline({ maxOutputTokens: 4096, thinkingBudget: 8192 }, 600_000, 50)).toEqual({ maxOutputTokens: 4096, thinkingBudget: 8192, limitedByDeadline: false });
  });
  it("cuts thinking first and never exceeds what can be decoded in time", () => {
    const b = budgetToDeadline({ maxOutputTokens: 4096, thinkingBudget: 81_920 }, 300_000, 50)!;
    expect(b.limitedByDeadline).toBe(true);
    expect(b.maxOutputTokens).toBe(4096);
    expect(b.maxOutputTokens + b.thinkingBudget!).toBe(15_000);
  });
  it("declines to start with almost no time left", () => {
    expect(budgetToDeadline({ maxOutputTokens: 4096 }, 4_000, 50)).toBeUndefined();
  });
});
