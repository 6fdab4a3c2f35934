import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LongdocError } from "../shared/errors.ts";
import { createModelClient, type ChatRequest } from "../shared/model/client.ts";
import { startSimulator, type FaultKind } from "../shared/sim/index.ts";

type Sim = Awaited<ReturnType<typeof startSimulator>>;

const request: ChatRequest = {
  model: "qwen3-max",
  messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: '<document index="1" source="a.md">\nRevenue rose 4%.\n</document>\n\nWhat rose?' },
  ],
  maxOutputTokens: 512,
  thinking: { enabled: true, budget: 256 },
};

describe("model client against the simulator", () => {
  let sim: Sim;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(() => sim?.stop());

  it("streams the reasoning and the answer apart, with usage from the last chunk", async () => {
    const client = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL });
    const r = await client.chat(request);
    expect(r.reasoning.length).toBeGreaterThan(0);
    expect(r.answer).toContain("document 1 (a.md)");
    expect(r.answer).not.toContain(r.reasoning);
    expect(r.finishReason).toBe("stop");
    expect(r.requestId).toMatch(/^chatcmpl-/);
    const call = sim.calls.at(-1)!;
    expect(r.usage).toEqual({ inputTokens: call.promptTokens, outputTokens: call.completionTokens, reasoningTokens: call.reasoningTokens, cachedTokens: call.cachedTokens });
    expect(r.usage.reasoningTokens).toBeGreaterThan(0);
    expect(r.usage.reasoningTokens).toBeLessThanOrEqual(256);
  });

  const cases: [FaultKind, { code: string; retryable: boolean; haltsJob: boolean }][] = [
    ["500", { code: "model_unavailable", retryable: true, haltsJob: false }],
    ["503", { code: "model_unavailable", retryable: true, haltsJob: false }],
    ["429", { code: "rate_limited", retryable: true, haltsJob: false }],
    ["burst", { code: "rate_limited", retryable: true, haltsJob: false }],
    ["quota", { code: "rate_limited", retryable: true, haltsJob: false }],
    ["401", { code: "model_auth", retryable: false, haltsJob: true }],
    ["arrearage", { code: "model_billing", retryable: false, haltsJob: true }],
    ["404", { code: "model_not_found", retryable: false, haltsJob: true }],
    ["moderation", { code: "moderation", retryable: false, haltsJob: false }],
    ["midstream", { code: "moderation", retryable: false, haltsJob: false }],
    ["drop", { code: "model_unavailable", retryable: true, haltsJob: false }],
    ["reset", { code: "model_unavailable", retryable: true, haltsJob: false }],
  ];

  it.each(cases)("classifies a %s fault", async (kind, expected) => {
    const client = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL });
    sim.injectFaults({ kind, count: 1 });
    const error = await client.chat(request).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(LongdocError.is(error)).toBe(true);
    expect(error).toMatchObject(expected);
  });

  it("refuses an input over the model's maximum with input_too_long", async () => {
    const client = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL });
    const huge = "零一二三四五六七八九".repeat(50_000);
    const error = await client.chat({ ...request, messages: [{ role: "user", content: huge }] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "input_too_long", retryable: false });
  });
});
