/**
 * The simulator's deterministic output: a reasoning trace (thinking on) and an answer that
 * carries the proof of the documents received, mentions each question, and respects
 * `thinking_budget`, `max_completion_tokens` (or a lone legacy `max_tokens`, read the same way) and `stop`.
 */
import { countTokens } from "../tokens/index.ts";
import { instanceOf } from "./jsonschema.ts";
import { proofText, type DocumentProof, type FoundDocument } from "./proof.ts";
import type { SimRequest } from "./request.ts";
import { JUDGE_INSTRUCTION, samplesIn } from "../reason/judge.ts";
import { CITATION_INSTRUCTION_START } from "../citations/instruction.ts";
import { simulatedCitationList, simulatedCitations, withJsonCitations } from "./cite.ts";

export interface ContentInput {
  model: string;
  promptTokens: number;
  documents: DocumentProof[];
  /** Leading text of each document (for the reasoning trace). */
  documentOpenings: string[];
  /** The last user message with document blocks removed. */
  question: string;
  thinking: boolean;
  /** Cap on reasoning tokens (thinking_budget or the model's maximum). */
  thinkingBudget: number;
  /** Cap on answer tokens (the model's maximum output). */
  maxAnswerTokens: number;
  /** Cap on reasoning + answer (max_completion_tokens), if sent. */
  maxCompletionTokens?: number;
  stop?: string[];
  format: { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: Record<string, unknown> | boolean };
  /** The `schema` fault: a json_schema answer that breaks the schema (its required properties dropped). */
  violateSchema?: boolean;
  /** Partial mode: the answer so far; the output is the rest of the same answer. */
  prefix?: string | null;
  /** Functions offered in `tools`, and `tool_choice`. */
  tools?: string[];
  toolChoice?: "auto" | "none" | { name: string };
  /** The content of the tool results since the last user message, in order (empty: no tool has run yet). */
  toolResults?: string[];
  /** The request's `seed`: samples of one question differ by it (every third seed reads the figures differently). */
  seed?: number | null;
  /** The first numbers in the documents (what the simulated tool code computes with). */
  figures?: number[];
  /** Each document's whole text: quoted when the prompt asks for citations (cite.ts). */
  documentTexts?: string[];
  /** The `citations` fault: some cited passages are invented (cite.ts). */
  inventCitations?: boolean;
}

/** A tool call the model makes instead of answering (finish_reason "tool_calls"). */
export interface SimToolCall {
  name: string;
  /** JSON text: `{"code": "..."}`. */
  arguments: string;
}

export interface ContentOutput {
  reasoning: string;
  answer: string;
  reasoningTokens: number;
  answerTokens: number;
  finishReason: "stop" | "length" | "tool_calls";
  toolCall: SimToolCall | null;
}

/** Every third seed dissents, so k = 3 samples give two that agree and one that does not. */
export const dissents = (seed: number | null | undefined) => seed !== null && seed !== undefined && seed % 3 === 0;

/**
 * The simulated model's code: arithmetic over the first figures of the documents (ratio, growth,
 * sum), printing its inputs so the trace shows what it computed from. A dissenting sample reads
 * the figures one place later.
 */
export function simulatedCode(figures: number[], seed: number | null | undefined): string {
  const base = figures.length >= 2 ? figures : [...figures, 1000, 800, 120, 100].slice(0, 4);
  const f = (dissents(seed) ? base.slice(1, 5) : base.slice(0, 4)).concat([1, 1, 1, 1]).slice(0, 4);
  return [
    "// longdoc-sim: exact arithmetic over the first figures found in the documents",
    `const figures = [${f.join(", ")}];`,
    "const ratio = figures[0] / figures[1];",
    "const growth = figures[2] / figures[3] - 1;",
    'console.log("figures: " + figures.join(", "));',
    "({ ratio: Math.round(ratio * 10000) / 10000, growthPct: Math.round(growth * 10000) / 100, sum: figures.reduce((s, x) => s + x, 0) })",
  ].join("\n");
}

/** A judging call: the simulated judge picks the earliest of the answers most samples gave, and says so. */
function judgement(question: string): string {
  const samples = samplesIn(question);
  const norm = (t: string) => t.toLowerCase().replace(/\s+/g, " ").trim();
  const votes = samples.map((t) => samples.filter((u) => norm(u) === norm(t)).length);
  const best = votes.indexOf(Math.max(0, ...votes));
  if (best < 0) return "Chosen: 1\nWhy: no sampled answers were found in the request.";
  return `Chosen: ${best + 1}\nWhy: sample ${best + 1} is the answer ${votes[best]} of the ${samples.length} samples gave, and it quotes the documents as they are.`;
}

/** The first five figures (numbers of three or more digits, thousands separators allowed; not years or identifiers) in the documents. */
export function figuresOf(texts: string[]): number[] {
  const out: number[] = [];
  for (const t of texts) {
    // Not identifiers: no leading zero, no hyphen beside it (file numbers such as 001-02217).
    for (const m of t.matchAll(/(?<![\w.-])[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?(?![\w-])|(?<![\w.,-])[1-9]\d{2,}(?:\.\d+)?(?![\w,-])/g)) {
      const n = Number(m[0].replace(/,/g, ""));
      if (n > 0 && !(n >= 1900 && n <= 2100 && !m[0].includes(","))) out.push(n); // years are labels, not figures
      if (out.length === 5) return out;
    }
  }
  return out;
}

/** Numbers in a tool result's `value:` line (else anywhere in it), in order. */
export function toolNumbers(result: string): number[] {
  const value = /^value: (.*)$/m.exec(result)?.[1] ?? result;
  return [...value.matchAll(/-?\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi)].map((m) => Number(m[0])).filter(Number.isFinite);
}

const collapse = (s: string, max: number) => {
  const t = s.replace(/\s+/g, " ").trim();
  const cps = [...t];
  return cps.length > max ? `${cps.slice(0, max).join("")}…` : t;
};

/** The questions: `## id` sections when present, else the whole text. */
export function questionsOf(question: string): { id: string | null; ask: string }[] {
  const lines = question.split("\n");
  const sections: { id: string | null; ask: string[] }[] = [];
  for (const line of lines) {
    const h = /^#{1,6}\s+(.+?)\s*$/.exec(line);
    if (h) sections.push({ id: h[1]!, ask: [] });
    else sections.at(-1)?.ask.push(line);
  }
  if (sections.length) return sections.map((s) => ({ id: s.id, ask: s.ask.join("\n").trim() }));
  return question.trim() ? [{ id: null, ask: question.trim() }] : [];
}

export function reasoningText(input: ContentInput): string {
  const i = { ...input, question: withoutCitationInstruction(input.question).question };
  const qs = questionsOf(i.question);
  const lines = [
    `The user sent ${i.documents.length} document(s) in a prompt of ${i.promptTokens} tokens and asks ${qs.length} question(s): "${collapse(i.question, 200)}".`,
    "I will go through each document in order.",
  ];
  i.documents.forEach((d, k) => {
    lines.push(`Document ${d.index} (${d.source}) has ${d.tokens} tokens. It begins: "${collapse(i.documentOpenings[k] ?? "", 80)}". I check it against every question.`);
  });
  const steps = Math.min(24, Math.max(2, Math.ceil(Math.log2(Math.max(2, i.promptTokens)))));
  for (let s = 1; s <= steps; s++) {
    lines.push(`Step ${s} of ${steps}: cross-checking part ${s} of the material against the question${qs.length === 1 ? "" : "s"}, noting where the documents agree and where they are silent.`);
  }
  const results = i.toolResults ?? [];
  if (results.length) lines.push(`The tool returned: "${collapse(results.at(-1)!, 300)}". I will quote it in the answer.`);
  else if (i.tools?.length && i.toolChoice !== "none") lines.push(`I will compute the figures exactly with the ${typeof i.toolChoice === "object" ? i.toolChoice.name : i.tools[0]} tool.`);
  lines.push("Now I will write the answer, beginning with a proof of each document received.");
  return lines.join("\n");
}

/** The question without the citation instruction (whose example citation must not be echoed as one), and whether it asked. */
function withoutCitationInstruction(question: string): { question: string; cite: boolean } {
  const at = question.indexOf(CITATION_INSTRUCTION_START);
  return at < 0 ? { question, cite: false } : { question: question.slice(0, at).trimEnd(), cite: true };
}

export function answerText(input: ContentInput): string {
  const { question, cite } = withoutCitationInstruction(input.question);
  const i = { ...input, question };
  // citations: verify: real passages of the documents, in the contract's markup (cite.ts).
  const texts = input.documentTexts ?? [];
  const cited = (docs: number[], key: string, named = false) =>
    cite && texts.length
      ? simulatedCitations(docs.map((k) => ({ source: i.documents[k]?.source ?? "", text: texts[k] ?? "" })), key, { invent: input.inventCitations, named })
      : [];
  const proof = proofText(i.model, i.promptTokens, i.documents);
  const qs = questionsOf(i.question);
  const span = i.documents.length ? `document${i.documents.length === 1 ? "" : "s"} ${i.documents.map((d) => d.index).join(", ")}` : "the conversation";
  const results = i.toolResults ?? [];
  const quote = results.length ? `Tool output:\n${results.at(-1)}` : null;
  // Numbers: the tool's results; without a tool, a dissenting sample reads 2 where the others read 1.
  const figures = results.length ? toolNumbers(results.at(-1)!) : dissents(i.seed) ? [2] : [];
  if (i.format.type === "json_schema") {
    const made = instanceOf(i.format.schema, `${proof}\n${summary(qs)}${quote ? `\n${quote}` : ""}`, figures);
    // citations: verify with a schema that has a `citations` array: real passages there (cite.ts).
    const valid = cite && texts.length ? withJsonCitations(made, i.format.schema, simulatedCitationList(i.documents.map((d, k) => ({ source: d.source, text: texts[k] ?? "" })), "json", { invent: input.inventCitations })) : made;
    return JSON.stringify(i.violateSchema ? violating(i.format.schema, valid) : valid);
  }
  if (i.format.type === "json_object") {
    return JSON.stringify({ answer: summary(qs), proof, documents: i.documents });
  }
  const parts = [proof, ""];
  if (i.question.includes(JUDGE_INSTRUCTION)) return [...parts, judgement(i.question)].join("\n");
  if (quote) parts.push(quote, "");
  if (!results.length && dissents(i.seed)) parts.push("A second reading of the figures gives a different result.", "");
  // A packed call asks for one <answer document="N"> section per document.
  if (/<answer document="N">/.test(i.question) && i.documents.length > 0) {
    for (const d of i.documents) {
      parts.push(`<answer document="${d.index}">`, `Answer for document ${d.index} (${d.source}), ${d.tokens} tokens, sha256=${d.sha256}.`);
      for (const q of qs) parts.push(`${q.id !== null ? `${q.id}: ` : ""}a deterministic placeholder drawn from document ${d.index}.`);
      parts.push(...cited([i.documents.indexOf(d)], "packed", true));
      parts.push("</answer>", "");
    }
    return parts.join("\n").trimEnd();
  }
  const all = i.documents.map((_, k) => k);
  if (qs.length === 0) parts.push(`Simulated answer based on ${span}.`, ...cited(all, "answer"));
  for (const q of qs) {
    if (q.id !== null) parts.push(`## ${q.id}`);
    parts.push(`Question: ${collapse(q.ask, 2000)}`);
    parts.push(`Simulated answer: a deterministic placeholder drawn from ${span}.`, ...cited(all, q.id ?? "answer"), "");
  }
  return parts.join("\n").trimEnd();
}

/** A document that fails `schema`: the valid one without its required properties, or a bare string. */
function violating(schema: Record<string, unknown> | boolean, valid: unknown): unknown {
  const required = typeof schema === "object" && Array.isArray(schema.required) ? (schema.required as unknown[]) : [];
  if (required.length && typeof valid === "object" && valid !== null && !Array.isArray(valid)) {
    const out = { ...(valid as Record<string, unknown>) };
    for (const k of required) if (typeof k === "string") delete out[k];
    out.longdoc_sim_violation = "required properties left out on purpose (fault kind `schema`)";
    return out;
  }
  return "longdoc-sim: an answer that does not match the schema (fault kind `schema`)";
}

const summary = (qs: { id: string | null; ask: string }[]) =>
  qs.length ? qs.map((q) => `${q.id ? `${q.id}: ` : ""}simulated answer to "${collapse(q.ask, 300)}"`).join("\n") : "simulated answer";

/**
 * The longest prefix of `text` whose token count is at most `limit` (binary search on code
 * points; the count of the result is exact).
 */
export function cutToTokens(text: string, limit: number): { text: string; tokens: number } {
  const full = countTokens(text);
  if (full <= limit) return { text, tokens: full };
  if (limit <= 0) return { text: "", tokens: 0 };
  const cps = [...text];
  let lo = 0;
  let hi = cps.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (countTokens(cps.slice(0, mid).join("")) <= limit) lo = mid;
    else hi = mid - 1;
  }
  let out = cps.slice(0, lo).join("");
  let n = countTokens(out);
  while (n > limit && lo > 0) {
    out = cps.slice(0, --lo).join("");
    n = countTokens(out);
  }
  return { text: out, tokens: n };
}

/**
 * The answer to a parsed request over the documents found in it, as the realtime endpoint streams
 * it and a batch line returns it; `fault` is the injected fault, if any (`schema`, `citations`).
 */
export function answerRequest(parsed: SimRequest, found: FoundDocument[], fault: { kind: string } | null | undefined, call: { documents: DocumentProof[]; question: string; toolResults: string[] }): ContentOutput {
  return generate({
    model: parsed.modelName,
    // A continuation proves the documents as the answer it continues did.
    promptTokens: parsed.promptTokensBeforePartial,
    documents: call.documents,
    documentOpenings: found.map((d) => d.text.slice(0, 400)),
    question: call.question,
    thinking: parsed.thinking,
    thinkingBudget: parsed.thinkingBudget,
    maxAnswerTokens: parsed.maxAnswerTokens,
    maxCompletionTokens: parsed.maxCompletionTokens,
    stop: parsed.stop,
    format: parsed.format,
    violateSchema: fault?.kind === "schema",
    prefix: parsed.partialPrefix,
    tools: parsed.tools,
    toolChoice: parsed.toolChoice,
    toolResults: call.toolResults,
    seed: parsed.seed,
    figures: figuresOf(found.map((d) => d.text)),
    documentTexts: found.map((d) => d.text),
    inventCitations: fault?.kind === "citations",
  });
}

export function generate(i: ContentInput): ContentOutput {
  let reasoning = "";
  let reasoningTokens = 0;
  const total = i.maxCompletionTokens ?? Infinity;
  if (i.thinking) {
    const r = cutToTokens(reasoningText(i), Math.min(i.thinkingBudget, total));
    reasoning = r.text;
    reasoningTokens = r.tokens;
  }
  const tool = toolToCall(i);
  if (tool) {
    // A tool offer gets a tool call first; its arguments count as output tokens.
    const args = JSON.stringify({ code: simulatedCode(i.figures ?? [], i.seed) });
    return { reasoning, answer: "", reasoningTokens, answerTokens: countTokens(args), finishReason: "tool_calls", toolCall: { name: tool, arguments: args } };
  }
  let answer = answerText(i);
  let finishReason: "stop" | "length" = "stop";
  if (i.stop?.length) {
    const at = Math.min(...i.stop.filter((s) => s.length > 0).map((s) => answer.indexOf(s)).filter((x) => x >= 0));
    if (Number.isFinite(at)) answer = answer.slice(0, at);
  }
  // Partial mode: the same answer goes on from where the prefix stops.
  if (i.prefix) answer = answer.startsWith(i.prefix) ? answer.slice(i.prefix.length) : answer;
  const cap = Math.min(i.maxAnswerTokens, total - reasoningTokens);
  const a = cutToTokens(answer, cap);
  if (a.text.length < answer.length) finishReason = "length";
  return { reasoning, answer: a.text, reasoningTokens, answerTokens: a.tokens, finishReason, toolCall: null };
}

/** The function to call now: the named one, else the first offered, until a tool result has come back. */
function toolToCall(i: ContentInput): string | null {
  if (!i.tools?.length || i.toolChoice === "none" || (i.toolResults?.length ?? 0) > 0) return null;
  return typeof i.toolChoice === "object" ? i.toolChoice.name : i.tools[0]!;
}

/** Splits text into stream deltas of a few words each (concatenation is the text). */
export function deltas(text: string, wordsPerDelta = 3): string[] {
  const words = text.match(/^\s+|\S+\s*/g) ?? [];
  const out: string[] = [];
  for (let k = 0; k < words.length; k += wordsPerDelta) out.push(words.slice(k, k + wordsPerDelta).join(""));
  if (out.join("") !== text) return text ? [text] : [];
  return out;
}
