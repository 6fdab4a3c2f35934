/**
 * One sample of a call, with the code tool when the job offers it: the model is called, each tool
 * call it makes runs in the sandbox and its output goes back as a `tool` message, until the model
 * answers. The loop stays inside the call's own budget: the answer cap and thinking budget are
 * shared by all rounds (each round gets what the earlier ones left), the rounds are capped, and
 * the last round (or one started with little time left) is sent with `tool_choice: "none"` so the
 * model must answer.
 */
import type { ChatResult } from "../model/client.ts";
import type { CallPlan } from "../model/plan.ts";
import { messageText, type ChatMessage } from "../model/prompt.ts";
import { countChatTokens } from "../tokens/index.ts";
import { CODE_TOOL, CODE_TOOL_NAME, runCode, toolMessage, type CodeLimits } from "../tools/code.ts";

/** What a round adds to the model request (carried on the plan): tools, tool_choice, seed. */
export type CallExtras = NonNullable<CallPlan["extras"]>;

/**
 * One model call of the item; `first` is the item's very first call (it may wait longest for the
 * quota); `label` names the call in the attempt's trace ("sample 2 round 3", "judge").
 */
export type CallFn = (plan: CallPlan, first: boolean, label: string) => Promise<ChatResult>;

export interface ToolRun {
  id: string;
  name: string;
  code: string;
  /** What the model read back (stdout, value or error). */
  output: string;
  ok: boolean;
  durationMs: number;
}

export interface Round {
  round: number;
  reasoning: string;
  /** Text the model wrote in this round (the answer, in the last one). */
  answer: string;
  finishReason: string | null;
  tools: ToolRun[];
}

export interface SampleRun {
  /** 1-based. */
  sample: number;
  seed: number | undefined;
  rounds: Round[];
  /** Every model call of the sample, in order (for pricing and usage). */
  calls: ChatResult[];
  answer: string;
  finishReason: string | null;
  toolCalls: number;
}

export interface SampleOptions {
  sample: number;
  seed: number | undefined;
  plan: CallPlan;
  call: CallFn;
  first: boolean;
  tools: boolean;
  /** `code`: the first round must call the code tool. */
  toolChoice: "auto" | "code";
  maxRounds: number;
  codeLimits: CodeLimits;
  /** Milliseconds left before the worker's deadline (its margin already taken off). */
  timeLeftMs: () => number;
}

/** Below this much time left, a round is the last: the model is asked to answer without tools. */
export const LAST_ROUND_TIME_MS = 60_000;

const countMessages = (messages: ChatMessage[]) => countChatTokens(messages.map((m) => ({ role: m.role === "tool" ? "tool" : m.role, content: messageText(m) })));

export async function runSample(o: SampleOptions): Promise<SampleRun> {
  const rounds: Round[] = [];
  const calls: ChatResult[] = [];
  let messages = o.plan.messages;
  let answerUsed = 0;
  let thinkingUsed = 0;
  let toolCalls = 0;
  const rounds_ = o.tools ? o.maxRounds : 1;
  for (let round = 1; ; round++) {
    const last = round >= rounds_ || o.timeLeftMs() < LAST_ROUND_TIME_MS + o.codeLimits.timeoutMs;
    const extras: CallExtras = { ...(o.seed !== undefined ? { seed: o.seed } : {}) };
    if (o.tools) {
      extras.tools = [CODE_TOOL];
      extras.toolChoice = last ? "none" : round === 1 && o.toolChoice === "code" ? { name: CODE_TOOL_NAME } : "auto";
    }
    const plan: CallPlan = {
      ...o.plan,
      extras,
      messages,
      inputTokens: round === 1 ? o.plan.inputTokens : countMessages(messages),
      maxOutputTokens: o.plan.maxOutputTokens - answerUsed,
      thinkingBudget: o.plan.thinkingBudget === undefined ? undefined : Math.max(1, o.plan.thinkingBudget - thinkingUsed),
    };
    const r = await o.call(plan, o.first && round === 1, callLabel(o.sample, round, o.tools));
    calls.push(r);
    answerUsed += r.usage.outputTokens - r.usage.reasoningTokens;
    thinkingUsed += r.usage.reasoningTokens;
    const wanted = r.finishReason === "tool_calls" ? (r.toolCalls ?? []) : [];
    const step: Round = { round, reasoning: r.reasoning, answer: r.answer, finishReason: r.finishReason, tools: [] };
    rounds.push(step);
    if (wanted.length === 0 || last) {
      // An answer; or tool calls after the model was told to answer, which end the sample unanswered.
      const finishReason = wanted.length ? "tool_calls" : r.finishReason;
      return { sample: o.sample, seed: o.seed, rounds, calls, answer: r.answer, finishReason, toolCalls };
    }
    const results: ChatMessage[] = [];
    for (const tc of wanted) {
      const run = await runTool(tc, o.codeLimits, o.timeLeftMs);
      step.tools.push(run);
      toolCalls++;
      results.push({ role: "tool", tool_call_id: tc.id, content: run.output });
    }
    messages = [...messages, { role: "assistant", content: r.answer, tool_calls: wanted.map((t) => ({ id: t.id, type: "function" as const, function: { name: t.name, arguments: t.arguments } })) }, ...results];
    if (answerUsed >= o.plan.maxOutputTokens) {
      // The tool calls used the whole answer budget: no room left for an answer.
      return { sample: o.sample, seed: o.seed, rounds, calls, answer: "", finishReason: "length", toolCalls };
    }
  }
}

/** Runs one tool call; anything wrong with it (unknown function, bad arguments) is the model's to read, as an error. */
async function runTool(tc: { id: string; name: string; arguments: string }, limits: CodeLimits, timeLeftMs: () => number): Promise<ToolRun> {
  const started = Date.now();
  const fail = (code: string, output: string): ToolRun => ({ id: tc.id, name: tc.name, code, output, ok: false, durationMs: Date.now() - started });
  if (tc.name !== CODE_TOOL_NAME) return fail("", `error: there is no tool named '${tc.name}'; the only tool is ${CODE_TOOL_NAME}`);
  let code: unknown;
  try {
    code = (JSON.parse(tc.arguments) as { code?: unknown }).code;
  } catch {
    return fail(tc.arguments, `error: the arguments are not JSON; send {"code": "<JavaScript>"}`);
  }
  if (typeof code !== "string" || !code.trim()) return fail(tc.arguments, `error: the arguments need a "code" string`);
  // Never let a script run past the worker's deadline.
  const run = await runCode(code, { ...limits, timeoutMs: Math.max(100, Math.min(limits.timeoutMs, timeLeftMs() - 1_000)) });
  return { id: tc.id, name: tc.name, code, output: toolMessage(run), ok: run.ok, durationMs: run.durationMs };
}

/** A sample's call in the trace: "sample 2", and its tool round when the code tool is on ("sample 2 round 3"). */
function callLabel(sample: number, round: number, tools: boolean): string {
  return tools ? `sample ${sample} round ${round}` : `sample ${sample}`;
}
