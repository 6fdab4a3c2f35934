// The simulator's side of tools and samples, over real HTTP on loopback: the streamed tool call
// (delta.tool_calls), the answer that quotes the tool's output, seeds that make samples differ,
// and the refusals the reference lists. Then the tool loop's caps with a scripted model.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createModelClient, type ChatRequest, type ChatResult } from "../shared/model/client.ts";
import type { CallPlan } from "../shared/model/plan.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { CODE_TOOL, DEFAULT_CODE_LIMITS } from "../shared/tools/code.ts";
import { LAST_ROUND_TIME_MS, runSample, type CallExtras } from "../shared/worker/tool-loop.ts";

const DOC = `<document boundary="b-0123456789abcdef" index="1" source="r.md">\nRevenue 48,250 and 45,100; operating income 6,120 and 5,480.\n</document boundary="b-0123456789abcdef">`;
const messages = [
  { role: "system" as const, content: "You are an analyst." },
  { role: "user" as const, content: `${DOC}\n\nCompute the revenue growth.` },
];

describe("the simulator with tools and seeds", () => {
  let sim: Simulator;
  let raw: OpenAI;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
    raw = new OpenAI({ apiKey: "sk-test", baseURL: sim.baseURL, maxRetries: 0 });
  });
  afterAll(() => sim.stop());

  it("streams a tool call as delta.tool_calls: id, type and name first, then the arguments in pieces, finish_reason tool_calls", async () => {
    const stream = await raw.chat.completions.create({ model: "qwen3-max", messages, stream: true, stream_options: { include_usage: true }, tools: [CODE_TOOL] });
    const deltas: Record<string, unknown>[] = [];
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      const ch = c.choices[0];
      if (!ch) continue;
      if (ch.delta.tool_calls) deltas.push(...(ch.delta.tool_calls as unknown as Record<string, unknown>[]));
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    expect(finish).toBe("tool_calls");
    expect(deltas[0]).toEqual({ index: 0, id: expect.stringMatching(/^call_[0-9a-f]{24}$/), type: "function", function: { name: "run_javascript", arguments: "" } });
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.slice(1).every((d) => d.index === 0 && d.id === undefined)).toBe(true);
    const args = deltas.map((d) => (d.function as { arguments: string }).arguments).join("");
    expect(JSON.parse(args).code).toContain("const figures = [48250, 45100, 6120, 5480];");
    expect(usage!.completion_tokens).toBeGreaterThan(20);
  });

  it("the model client returns the tool call; after the tool's result the answer quotes it", async () => {
    const client = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL });
    const req: ChatRequest = { model: "qwen3-max", messages, maxOutputTokens: 1024, thinking: { enabled: false }, tools: [CODE_TOOL], toolChoice: "auto" };
    const first = await client.chat(req);
    expect(first.finishReason).toBe("tool_calls");
    expect(first.toolCalls).toEqual([{ id: expect.stringMatching(/^call_/), name: "run_javascript", arguments: expect.stringContaining('"code"') }]);
    const second = await client.chat({
      ...req,
      messages: [
        ...messages,
        { role: "assistant", content: "", tool_calls: first.toolCalls!.map((t) => ({ id: t.id, type: "function" as const, function: { name: t.name, arguments: t.arguments } })) },
        { role: "tool", tool_call_id: first.toolCalls![0]!.id, content: 'stdout:\nfigures: 48250, 45100\nvalue: {"ratio":1.0698}' },
      ],
    });
    expect(second.finishReason).toBe("stop");
    expect(second.toolCalls).toBeUndefined();
    expect(second.answer).toContain('Tool output:\nstdout:\nfigures: 48250, 45100\nvalue: {"ratio":1.0698}');
    expect(sim.calls.at(-1)!.toolResults).toBe(1);
  });

  it("samples differ by seed: every third seed dissents", async () => {
    const client = createModelClient({ apiKey: "sk-test", baseURL: sim.baseURL });
    const answer = async (seed: number) => (await client.chat({ model: "qwen3-max", messages, maxOutputTokens: 512, thinking: { enabled: false }, seed })).answer;
    const [a, b, c] = [await answer(1), await answer(2), await answer(3)];
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(sim.calls.slice(-3).map((x) => x.seed)).toEqual([1, 2, 3]);
  });

  it("refuses what the API refuses: a named tool_choice in thinking mode, a tool called search, a tool message without tool_calls, n > 1 with tools", async () => {
    const status = async (body: Record<string, unknown>) => {
      const res = await fetch(`${sim.baseURL}/chat/completions`, { method: "POST", headers: { authorization: "Bearer sk-test", "content-type": "application/json" }, body: JSON.stringify({ model: "qwen3-max", messages, stream: true, ...body }) });
      const text = await res.text();
      return { status: res.status, body: (res.status === 200 ? { error: { code: "", message: "" } } : JSON.parse(text)) as { error: { code: string; message: string } } };
    };
    const forced = await status({ enable_thinking: true, tools: [CODE_TOOL], tool_choice: { type: "function", function: { name: "run_javascript" } } });
    expect(forced.status).toBe(400);
    expect(forced.body.error).toMatchObject({ code: "invalid_parameter_error", message: expect.stringContaining("thinking mode") });
    // The same named choice without thinking, and auto with thinking, are accepted.
    expect((await fetch(`${sim.baseURL}/chat/completions`, { method: "POST", headers: { authorization: "Bearer sk-test" }, body: JSON.stringify({ model: "qwen3-max", messages, tools: [CODE_TOOL], tool_choice: { type: "function", function: { name: "run_javascript" } } }) })).status).toBe(200);
    expect((await status({ enable_thinking: true, tools: [CODE_TOOL], tool_choice: "auto" })).status).toBe(200);
    expect((await status({ tools: [{ type: "function", function: { name: "search", parameters: {} } }] })).status).toBe(400);
    const orphan = await status({ messages: [...messages, { role: "tool", tool_call_id: "x", content: "1" }] });
    expect(orphan.status).toBe(400);
    expect(orphan.body.error.message).toMatch(/role "tool" must be a response to a preceeding message with "tool_calls"/);
    expect((await status({ n: 2, tools: [CODE_TOOL] })).status).toBe(400);
    expect((await status({ n: 5 })).status).toBe(400);
  });
});

describe("the tool loop's caps", () => {
  const plan: CallPlan = { messages, inputTokens: 100, maxOutputTokens: 500, thinkingBudget: undefined, truncated: null, prefixTokens: 50, explicitCache: false };
  const toolCall = (n: number): ChatResult => ({
    cacheType: "implicit",
    reasoning: "",
    answer: "",
    finishReason: "tool_calls",
    requestId: `r${n}`,
    usage: { inputTokens: 100, outputTokens: 30, reasoningTokens: 0, cachedTokens: 0 },
    toolCalls: [{ id: `c${n}`, name: "run_javascript", arguments: JSON.stringify({ code: `${n} * 2` }) }],
  });
  /** A model that calls the tool whenever it may. */
  const eager = (seen: CallExtras[]) => async (p: CallPlan) => {
    const extras = p.extras!;
    seen.push(extras);
    return extras.toolChoice === "none" ? { ...toolCall(seen.length), finishReason: "stop", toolCalls: undefined, answer: "done" } : toolCall(seen.length);
  };
  const base = { sample: 1, seed: undefined, plan, first: true, tools: true, toolChoice: "auto" as const, codeLimits: DEFAULT_CODE_LIMITS };

  it("caps the rounds: the last one is sent with tool_choice none and the tool outputs go back in order", async () => {
    const seen: CallExtras[] = [];
    const run = await runSample({ ...base, call: eager(seen), maxRounds: 3, timeLeftMs: () => 600_000 });
    expect(seen.map((e) => e.toolChoice)).toEqual(["auto", "auto", "none"]);
    expect(run).toMatchObject({ answer: "done", finishReason: "stop", toolCalls: 2 });
    expect(run.rounds.flatMap((r) => r.tools.map((t) => t.output))).toEqual(["value: 2", "value: 4"]);
  });

  it("forces the code tool in the first round only with toolChoice code; answers at once when the deadline is near", async () => {
    const seen: CallExtras[] = [];
    await runSample({ ...base, toolChoice: "code", call: eager(seen), maxRounds: 3, timeLeftMs: () => 600_000 });
    expect(seen.map((e) => e.toolChoice)).toEqual([{ name: "run_javascript" }, "auto", "none"]);
    const late: CallExtras[] = [];
    const run = await runSample({ ...base, call: eager(late), maxRounds: 3, timeLeftMs: () => LAST_ROUND_TIME_MS - 1 });
    expect(late.map((e) => e.toolChoice)).toEqual(["none"]);
    expect(run.toolCalls).toBe(0);
  });

  it("shares one answer budget across rounds and stops when the tool calls used it up", async () => {
    const budgets: number[] = [];
    const run = await runSample({
      ...base,
      plan: { ...plan, maxOutputTokens: 70 },
      call: async (p) => {
        budgets.push(p.maxOutputTokens);
        return p.extras!.toolChoice === "none" ? { ...toolCall(9), finishReason: "stop", toolCalls: undefined } : toolCall(budgets.length);
      },
      maxRounds: 8,
      timeLeftMs: () => 600_000,
    });
    expect(budgets).toEqual([70, 40, 10]);
    expect(run).toMatchObject({ answer: "", finishReason: "length", toolCalls: 3 });
  });
});
