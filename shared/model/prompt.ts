import { createHash } from "node:crypto";
import type { PromptSpec } from "./spec.ts";
import type { CountedText } from "../tokens/join.ts";
import { citationInstruction } from "../citations/instruction.ts";

/** A document as the model sees it: its source (S3 key or path) and extracted text. */
export interface PromptDocument {
  source: string;
  text: string;
  /** countTokens(text), when the caller counted it already (the worker has): counting the prompt reuses it. */
  tokens?: number;
  /** The SHA-256 (hex) of text, when the caller has it (the worker has): the boundary reuses it. */
  sha256?: string;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | { type: "text"; text: string; cache_control?: { type: "ephemeral" } }[];
  /** Partial mode: the model continues this (last, assistant) message's text. */
  partial?: boolean;
  /** An assistant turn that called tools (the code tool loop). */
  tool_calls?: { id: string; type: "function"; function: { name: string; arguments: string } }[];
  /** A tool turn: the call it answers. */
  tool_call_id?: string;
}

const DEFAULT_SYSTEM = "You are a careful analyst. Answer from the documents provided; say so when they do not contain the answer.";

/**
 * Each document is wrapped in a tag that names its source and carries the call's boundary token:
 *
 *   <document boundary="b-<16 hex>" index="1" source="docs/a.md">\n{TEXT}\n</document boundary="b-<16 hex>">
 *
 * The boundary is chosen so that no document text contains it (see `documentBoundary`), so text
 * inside a document (a `</document>`, a fake `<document index="2">` opener, a `## q` heading)
 * can never close its block or open another one. The simulator hashes what is between the tags,
 * so the format is part of the proof that a document arrived whole: keep it stable.
 */
export function documentBlock(doc: PromptDocument, index: number, boundary: string = BOUNDARY_PLACEHOLDER): string {
  return blockParts(doc, index, boundary).map(partText).join("");
}

/** A piece of the prompt: framing text, or a document's text with its known token count. */
export type PromptPart = string | CountedText;
const partText = (p: PromptPart) => (typeof p === "string" ? p : p.text);

function blockParts(doc: PromptDocument, index: number, boundary: string): PromptPart[] {
  const text = doc.tokens === undefined ? doc.text : { text: doc.text, tokens: doc.tokens };
  return [`<document boundary="${boundary}" index="${index}" source="${escapeAttr(doc.source)}">\n`, text, `\n</document boundary="${boundary}">`];
}

/** Hex digits in a boundary token (64 bits). */
const BOUNDARY_HEX = 16;
/** A boundary of the real length, for size estimates before the documents of a call are known. */
export const BOUNDARY_PLACEHOLDER = `b-${"0".repeat(BOUNDARY_HEX)}`;

/**
 * The boundary token of a call over `docs`: derived from a hash of the documents (sources and the
 * SHA-256 of their texts), so every call over the same documents (the per-question calls of one
 * item, the token count and the call itself) frames them identically and the cached prefix stays
 * the same. A document cannot contain the hash of itself, and the token is re-drawn (next counter)
 * in the unlikely case any document text or source contains it anyway.
 */
export function documentBoundary(docs: PromptDocument[]): string {
  const digests = docs.map((d) => d.sha256 ?? createHash("sha256").update(d.text).digest("hex"));
  for (let round = 0; ; round++) {
    const h = createHash("sha256").update(`longdoc-boundary\0${round}\0`);
    docs.forEach((d, i) => h.update(d.source).update("\0").update(digests[i]!).update("\0"));
    const boundary = `b-${h.digest("hex").slice(0, BOUNDARY_HEX)}`;
    if (!docs.some((d) => d.text.includes(boundary) || d.source.includes(boundary))) return boundary;
  }
}

const escapeAttr = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

/** Asked of packed calls, so each document's answer can be mapped back to it. */
export const PER_DOCUMENT_INSTRUCTION =
  'Several documents are given. Answer for each document separately, and wrap the whole answer for a document in <answer document="N"> and </answer>, where N is that document\'s index attribute.';

/** The instructions that follow the documents: the questions, or the job's prompt (and, last, the citation instruction). */
export function instructions(job: Pick<PromptSpec, "questions" | "prompt" | "output">, opts: { perDocument?: boolean; citations?: string } = {}): string {
  const parts: string[] = [];
  if (opts.perDocument) parts.push(PER_DOCUMENT_INSTRUCTION);
  if (job.prompt) parts.push(job.prompt);
  if (job.questions) {
    parts.push("Answer each question below. Start each answer with a heading that repeats its id.");
    for (const q of job.questions) parts.push(`## ${q.id}\n${q.ask}`);
  }
  if (job.output.format === "json") parts.push("Reply with JSON only, matching the required schema.");
  if (opts.citations) parts.push(opts.citations);
  return parts.join("\n\n");
}

/**
 * Documents first, questions last: the documents form a stable prefix that several calls
 * over the same documents can share in the provider's context cache.
 */
export function buildMessages(
  job: PromptSpec,
  docs: PromptDocument[],
  opts: { explicitCache?: boolean; layout?: PromptLayout } = {},
): ChatMessage[] {
  const layout = opts.layout ?? promptLayout(job, docs);
  const system: ChatMessage = { role: "system", content: layout.system };
  const body = layout.body.map(partText).join("");
  const tail = layout.tail;
  if (!opts.explicitCache) return [system, { role: "user", content: body + tail }];
  // The same text, split so the cache marker closes the document prefix.
  return [system, { role: "user", content: [{ type: "text", text: body, cache_control: { type: "ephemeral" } }, { type: "text", text: tail }] }];
}

/** The prompt's text in parts: the system prompt, the documents' blocks (the cacheable prefix) and the instructions after them. */
export interface PromptLayout {
  system: string;
  body: PromptPart[];
  tail: string;
}

export function promptLayout(job: PromptSpec, docs: PromptDocument[]): PromptLayout {
  const boundary = documentBoundary(docs);
  const body = docs.flatMap((d, i) => [...(i ? ["\n\n"] : []), ...blockParts(d, i + 1, boundary)]);
  const perDocument = job.packing === "packed" && docs.length > 1;
  // `citations: verify`: asked after the questions, so the document prefix (the cached part) does not change.
  const citations = job.citations === "verify" ? citationInstruction(docs) : undefined;
  return { system: job.system ?? DEFAULT_SYSTEM, body, tail: `\n\n${instructions(job, { perDocument, citations })}` };
}

/**
 * Splits a packed answer into one answer per document (1-based index → text). Documents the
 * model did not answer are absent from the map.
 */
export function splitPerDocument(answer: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of answer.matchAll(/<answer document="(\d+)">\s*([\s\S]*?)\s*<\/answer>/g)) out.set(Number(m[1]), m[2]!);
  return out;
}

/** Flattens content parts (and an assistant's tool calls, which the model reads too) for token counting. */
export const messageText = (m: ChatMessage) =>
  (typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("")) + (m.tool_calls?.length ? JSON.stringify(m.tool_calls) : "");
