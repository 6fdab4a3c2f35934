import { describe, expect, it } from "vitest";
import { budgetToDeadline, checkFits, type ModelLimits } from "../shared/model/budget.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { BudgetError } from "../shared/errors.ts";
import { parseJobText } from "../shared/job/load.ts";
import { planCall } from "../shared/model/plan.ts";
import { messageText } from "../shared/model/prompt.ts";

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

describe("planning a call: the whole prompt, counted exactly", () => {
  const spec = parseJobText("name: b\ndocuments:\n  - path: x\nprompt: Summarise.\nmaxOutputTokens: 1000\n", "b.yaml");
  const text = Array.from({ length: 600 }, (_, i) => `Paragraph ${i}: the segment's revenue rose ${i % 13}% on pricing.`).join("\n");
  const docs = [{ source: "report.md", text }];
  const exact = planCall(spec, { ...catalogModel(), maxInputTokens: 258_048 }, docs).inputTokens;

  it("fits a prompt of exactly the model's maximum input and fails one token over, naming the numbers", () => {
    expect(planCall(spec, { ...catalogModel(), maxInputTokens: exact }, docs).inputTokens).toBe(exact);
    expect(() => planCall(spec, { ...catalogModel(), maxInputTokens: exact - 1 }, docs)).toThrow(
      `the prompt is ${exact} tokens; qwen3-max accepts at most ${exact - 1} input tokens`,
    );
  });

  it("truncate: middle cuts only what it must and says how much", () => {
    const limit = Math.floor(exact * 0.6);
    const small = { ...catalogModel(), maxInputTokens: limit };
    const plan = planCall({ ...spec, truncate: "middle" }, small, docs);
    expect(plan.inputTokens).toBeLessThanOrEqual(limit);
    expect(plan.inputTokens).toBeGreaterThan(limit - 300);
    const sent = messageText(plan.messages[1]!);
    const marker = /\[\.\.\. (\d+) tokens cut from the middle of this document by longdoc \(truncate: middle\) \.\.\.\]/.exec(sent);
    expect(marker).not.toBeNull();
    expect(plan.truncated).toEqual({ source: "report.md", tokensCut: Number(marker![1]) });
    expect(Number(marker![1])).toBeGreaterThan(exact - limit - 50);
    // The head and the tail survive.
    expect(sent).toContain("Paragraph 0:");
    expect(sent).toContain("Paragraph 599:");
    expect(sent).not.toContain("Paragraph 300:");
  });

  it("reserves an explicit thinking budget against the context", () => {
    const model = { ...catalogModel(), contextTokens: exact + 1000 + 500 };
    const thinking = { enabled: true, budget: 500 };
    expect(planCall({ ...spec, thinking }, model, docs).thinkingBudget).toBe(500);
    expect(() => planCall({ ...spec, thinking: { enabled: true, budget: 501 } }, model, docs)).toThrow(/context is/);
  });
});

function catalogModel() {
  return getModel(loadCatalog(), "qwen3-max");
}
