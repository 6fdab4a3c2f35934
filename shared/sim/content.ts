/**
 * The simulator's deterministic output: a reasoning trace (thinking on) and an answer that
 * carries the proof of the documents received, mentions each question, and respects
 * `thinking_budget`, `max_tokens`, `max_completion_tokens` and `stop`.
 */
import { countTokens } from "../tokens/index.ts";
import { instanceOf } from "./jsonschema.ts";
import { proofText, type DocumentProof } from "./proof.ts";

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
  /** Cap on answer tokens (max_tokens or the model's maximum). */
  maxAnswerTokens: number;
  /** Cap on reasoning + answer (max_completion_tokens), if sent. */
  maxCompletionTokens?: number;
  stop?: string[];
  format: { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: Record<string, unknown> | boolean };
  /** The `schema` fault: a json_schema answer that breaks the schema (its required properties dropped). */
  violateSchema?: boolean;
  /** Partial mode: the answer so far; the output is the rest of the same answer. */
  prefix?: string | null;
}

export interface ContentOutput {
  reasoning: string;
  answer: string;
  reasoningTokens: number;
  answerTokens: number;
  finishReason: "stop" | "length";
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

export function reasoningText(i: ContentInput): string {
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
  lines.push("Now I will write the answer, beginning with a proof of each document received.");
  return lines.join("\n");
}

export function answerText(i: ContentInput): string {
  const proof = proofText(i.model, i.promptTokens, i.documents);
  const qs = questionsOf(i.question);
  const span = i.documents.length ? `document${i.documents.length === 1 ? "" : "s"} ${i.documents.map((d) => d.index).join(", ")}` : "the conversation";
  if (i.format.type === "json_schema") {
    const valid = instanceOf(i.format.schema, `${proof}\n${summary(qs)}`);
    return JSON.stringify(i.violateSchema ? violating(i.format.schema, valid) : valid);
  }
  if (i.format.type === "json_object") {
    return JSON.stringify({ answer: summary(qs), proof, documents: i.documents });
  }
  const parts = [proof, ""];
  // A packed call asks for one <answer document="N"> section per document.
  if (/<answer document="N">/.test(i.question) && i.documents.length > 0) {
    for (const d of i.documents) {
      parts.push(`<answer document="${d.index}">`, `Answer for document ${d.index} (${d.source}), ${d.tokens} tokens, sha256=${d.sha256}.`);
      for (const q of qs) parts.push(`${q.id !== null ? `${q.id}: ` : ""}a deterministic placeholder drawn from document ${d.index}.`);
      parts.push("</answer>", "");
    }
    return parts.join("\n").trimEnd();
  }
  if (qs.length === 0) parts.push(`Simulated answer based on ${span}.`);
  for (const q of qs) {
    if (q.id !== null) parts.push(`## ${q.id}`);
    parts.push(`Question: ${collapse(q.ask, 2000)}`);
    parts.push(`Simulated answer: a deterministic placeholder drawn from ${span}.`, "");
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

export function generate(i: ContentInput): ContentOutput {
  let reasoning = "";
  let reasoningTokens = 0;
  const total = i.maxCompletionTokens ?? Infinity;
  if (i.thinking) {
    const r = cutToTokens(reasoningText(i), Math.min(i.thinkingBudget, total));
    reasoning = r.text;
    reasoningTokens = r.tokens;
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
  return { reasoning, answer: a.text, reasoningTokens, answerTokens: a.tokens, finishReason };
}

/** Splits text into stream deltas of a few words each (concatenation is the text). */
export function deltas(text: string, wordsPerDelta = 3): string[] {
  const words = text.match(/^\s+|\S+\s*/g) ?? [];
  const out: string[] = [];
  for (let k = 0; k < words.length; k += wordsPerDelta) out.push(words.slice(k, k + wordsPerDelta).join(""));
  if (out.join("") !== text) return text ? [text] : [];
  return out;
}
