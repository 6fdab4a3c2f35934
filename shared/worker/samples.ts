/**
 * k samples of one call (`samples:`), each with the code tool loop when the job offers `tools`,
 * and the consensus over them. The first sample runs alone so that it writes the document prefix
 * to the context cache; the others then run together and read it. The result looks like one
 * ChatResult to the worker (answer = the consensus, reasoning = every sample's trace with its
 * tool calls in order), plus what `result.json`, the manifest and the trace files need.
 */
import type { JobRecord } from "../job/record.ts";
import { addUsage, zeroUsage, type ChatResult } from "../model/client.ts";
import type { CallPlan } from "../model/plan.ts";
import { jsonConsensus, textConsensus, type FieldVote } from "../reason/consensus.ts";
import { toleranceOf, toolRounds } from "../reason/settings.ts";
import { judgePrompt, parseJudgement } from "../reason/judge.ts";
import { messageText, type ChatMessage } from "../model/prompt.ts";
import { countChatTokens } from "../tokens/index.ts";
import { DEFAULT_CODE_LIMITS, type CodeLimits } from "../tools/code.ts";
import { LongdocError } from "../errors.ts";
import { runSample, type CallFn, type SampleRun } from "./tool-loop.ts";

/** Whether a job needs this path at all: one sample without tools is the worker's plain call. */
export const usesSampling = (job: JobRecord) => job.spec.samples > 1 || (job.spec.tools?.length ?? 0) > 0;

export interface Sampling {
  /** The question this call answers (null: the item's single call). */
  question: string | null;
  samples: SampleRun[];
  agreement: number;
  /** JSON: each field's agreement; ties and disagreements with every group. */
  fields: { path: string; agreement: number }[] | null;
  ties: string[];
  disagreements: FieldVote[];
  /** Samples (1-based) whose answer was not JSON. */
  unusable: number[];
  /** Text: the sample whose answer was kept (1-based). */
  chosen: number | null;
  /** Text with `judge: true`: the judging call's pick and reason (or why there was none). */
  judge: { chosen: number; why: string } | { error: string } | null;
  toolCalls: number;
  /** Samples the job's cost cap kept from being sent (the answer is the consensus of the others). */
  unsent: number;
}

export type SampledResult = ChatResult & { sampling: Sampling; calls: ChatResult[] };

export interface SampleCallOptions {
  job: JobRecord;
  plan: CallPlan;
  question: string | null;
  call: CallFn;
  /** Whether this is the item's first call (its first sample counts the attempt). */
  first: boolean;
  timeLeftMs: () => number;
  codeLimits?: CodeLimits;
  /** Whether a prompt of this many tokens, with this answer cap, fits the model (for the judging call). */
  fits: (inputTokens: number, maxOutputTokens: number) => boolean;
}

export async function sampleCall(o: SampleCallOptions): Promise<SampledResult> {
  const spec = o.job.spec;
  const k = spec.samples;
  const one = (n: number, first: boolean) =>
    runSample({
      sample: n,
      // Seeds make the samples differ reproducibly; a single sample sends none, as before.
      seed: k > 1 ? n : undefined,
      plan: o.plan,
      call: o.call,
      first,
      tools: (spec.tools ?? []).includes("code"),
      toolChoice: spec.toolChoice ?? "auto",
      maxRounds: toolRounds(spec),
      codeLimits: o.codeLimits ?? DEFAULT_CODE_LIMITS,
      timeLeftMs: o.timeLeftMs,
    });
  const samples = [await one(1, o.first)];
  // Settle every sample before failing: a call still streaming after the item gave up its claim
  // would be paid for twice (its spend and quota are settled inside it).
  const rest = await Promise.allSettled(Array.from({ length: k - 1 }, (_, i) => one(i + 2, false)));
  // Samples already paid are never thrown away: when the job's cost cap stops the others, the
  // answer is the consensus of the ones paid for. Any other failure fails the call (the paid
  // samples stay in the item's journal for the next delivery).
  const capped = rest.filter((r) => r.status === "rejected" && LongdocError.is(r.reason) && r.reason.code === "cost_cap").length;
  for (const r of rest) if (r.status === "rejected" && !(LongdocError.is(r.reason) && r.reason.code === "cost_cap")) throw r.reason;
  samples.push(...rest.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])));
  const judged = spec.judge && samples.length > 1 && spec.output.format === "text" ? await judge(o, samples) : null;
  return merge(o, samples, judged, capped);
}

/** The judging call: the same messages (the cached prefix) and one more asking which sample is best. */
async function judge(o: SampleCallOptions, samples: SampleRun[]): Promise<{ call: ChatResult | null; verdict: NonNullable<Sampling["judge"]> }> {
  const messages: ChatMessage[] = [...o.plan.messages, { role: "user", content: judgePrompt(samples.map((s) => s.answer)) }];
  const inputTokens = countChatTokens(messages.map((m) => ({ role: m.role, content: messageText(m) })));
  const maxOutputTokens = Math.min(o.plan.maxOutputTokens, 1024);
  if (!o.fits(inputTokens, maxOutputTokens)) {
    return { call: null, verdict: { error: `no judging call: the prompt with the ${samples.length} answers (${inputTokens} tokens) would not fit the model's context` } };
  }
  const call = await o.call({ ...o.plan, messages, inputTokens, maxOutputTokens, extras: undefined }, false, "judge");
  const verdict = parseJudgement(call.answer, samples.length);
  return { call, verdict: verdict ?? { error: `the judging call named no sample between 1 and ${samples.length}; the majority's answer is kept` } };
}

function merge(o: SampleCallOptions, samples: SampleRun[], judged: { call: ChatResult | null; verdict: NonNullable<Sampling["judge"]> } | null, unsent: number): SampledResult {
  const calls = [...samples.flatMap((s) => s.calls), ...(judged?.call ? [judged.call] : [])];
  const toolCalls = samples.reduce((n, s) => n + s.toolCalls, 0);
  const json = o.job.spec.output.format === "json";
  let answer: string;
  let chosen: number | null = null;
  let consensus: Pick<Sampling, "agreement" | "fields" | "ties" | "disagreements" | "unusable">;
  if (json) {
    const parsed = samples.map((s) => parseJson(s.answer));
    const c = jsonConsensus(parsed, toleranceOf(o.job.spec));
    // One sample keeps its text exactly; k samples give the consensus document.
    answer = samples.length === 1 ? samples[0]!.answer : c.answer === null ? samples[0]!.answer : JSON.stringify(c.answer);
    consensus = { agreement: samples.length === 1 ? 1 : c.agreement, fields: c.fields.map((f) => ({ path: f.path, agreement: f.agreement })), ties: c.ties, disagreements: c.disagreements, unusable: c.unusable };
  } else {
    const c = textConsensus(samples.map((s) => s.answer));
    chosen = judged && "chosen" in judged.verdict ? judged.verdict.chosen : c.chosen + 1;
    answer = samples[chosen - 1]!.answer;
    consensus = { agreement: c.agreement, fields: null, ties: c.tie ? ["(answer)"] : [], disagreements: [], unusable: [] };
  }
  const pick = samples[(chosen ?? 1) - 1]!;
  const lastCall = pick.calls.at(-1)!;
  return {
    cacheType: calls.some((c) => c.cacheType === "ephemeral") ? "ephemeral" : "implicit",
    reasoning: traceMarkdown(samples) + (judged?.call ? `\n\n# Judgement\n\n${[judged.call.reasoning.trim(), judged.call.answer.trim()].filter(Boolean).join("\n\n")}` : ""),
    answer,
    finishReason: pick.finishReason,
    usage: calls.reduce((u, c) => addUsage(u, c.usage), zeroUsage()),
    requestId: lastCall.requestId,
    calls,
    sampling: { question: o.question, samples, ...consensus, chosen, judge: judged?.verdict ?? null, toolCalls, unsent },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** reasoning.md for sampled or tool-using calls: each sample's rounds, with every tool call's code and output in order. */
export function traceMarkdown(samples: SampleRun[]): string {
  const out: string[] = [];
  for (const s of samples) {
    if (samples.length > 1) out.push(`# Sample ${s.sample}${s.seed !== undefined ? ` (seed ${s.seed})` : ""}`, "");
    for (const r of s.rounds) {
      if (s.rounds.length > 1) out.push(`## Round ${r.round}`, "");
      if (r.reasoning.trim()) out.push(r.reasoning.trim(), "");
      for (const t of r.tools) {
        out.push(`### Tool call: ${t.name}`, "", "```js", t.code, "```", "", "Output:", "", "```", t.output, "```", "");
      }
    }
    if (samples.length > 1) out.push(`Answer of sample ${s.sample}:`, "", s.answer, "");
  }
  return out.join("\n").trimEnd();
}

/** What result.json says about samples, agreement and tool calls, over all of an item's sampled calls. */
export function samplingSummary(parts: Sampling[], minAgreement: number | undefined) {
  const agreement = parts.length ? round4(Math.min(...parts.map((p) => p.agreement))) : 1;
  const summary = {
    samples: parts[0]?.samples.length ?? 1,
    agreement,
    toolCalls: parts.reduce((n, p) => n + p.toolCalls, 0),
    agreementDetail: parts.map((p) => ({
      question: p.question,
      agreement: p.agreement,
      ...(p.fields ? { fields: p.fields } : {}),
      ties: p.ties,
      disagreements: p.disagreements.map((d) => ({ path: d.path, groups: d.groups })),
      ...(p.unusable.length ? { unusable: p.unusable } : {}),
      ...(p.chosen !== null ? { chosen: p.chosen } : {}),
      ...(p.judge ? { judge: p.judge } : {}),
      ...(p.unsent ? { unsent: p.unsent } : {}),
    })),
  };
  const low =
    minAgreement !== undefined && agreement < minAgreement
      ? {
          kind: "low_agreement" as const,
          message: `the ${summary.samples} samples agree ${Math.round(agreement * 100)}%, below minAgreement ${minAgreement}; every sample is kept under samples/`,
        }
      : null;
  return { summary, low };
}

/** The trace files of a sampled item: one answer per sample and a structured trace of every round and tool call. */
export function sampleFiles(itemId: string, parts: Sampling[], json: boolean): { file: string; body: string; contentType: string }[] {
  const files: { file: string; body: string; contentType: string }[] = [];
  const ext = json ? "json" : "md";
  const type = json ? "application/json" : "text/markdown; charset=utf-8";
  for (const p of parts) {
    for (const s of p.samples) {
      files.push({ file: `samples/${p.question ? `${p.question}-` : ""}${s.sample}.${ext}`, body: s.answer, contentType: type });
    }
  }
  const trace = parts.map((p) => ({
    question: p.question,
    samples: p.samples.map((s) => ({
      sample: s.sample,
      seed: s.seed ?? null,
      finishReason: s.finishReason,
      toolCalls: s.toolCalls,
      answer: `items/${itemId}/samples/${p.question ? `${p.question}-` : ""}${s.sample}.${ext}`,
      rounds: s.rounds.map((r) => ({ round: r.round, finishReason: r.finishReason, tools: r.tools.map((t) => ({ name: t.name, code: t.code, output: t.output, ok: t.ok, durationMs: t.durationMs })) })),
    })),
  }));
  files.push({ file: "trace.json", body: JSON.stringify({ version: 1, calls: trace }, null, 2), contentType: "application/json" });
  return files;
}

const round4 = (n: number) => Math.round(n * 10_000) / 10_000;
