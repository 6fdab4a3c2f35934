/**
 * The proof of what the simulator received. The product wraps each document as
 * `<document boundary="b-<hex>" index="1" source="docs/report.md">\n{TEXT}\n</document boundary="b-<hex>">`
 * (more key="value" attributes allowed; attribute values XML-escaped; the boundary token is
 * the same for every block of a message and never occurs in a document's text). Hand-written
 * requests may use `<document index="1" …>\n{TEXT}\n</document>` without a boundary. The simulator reports, for each block
 * it finds in any message, sha256 (hex, UTF-8) and the Qwen token count of TEXT:
 *
 *   longdoc-sim: model=qwen3-max prompt_tokens=1234 documents=2
 *   document 1 (docs/report.md): tokens=123456 sha256=<64 hex>
 *   document 2 (docs/notes.txt): tokens=789 sha256=<64 hex>
 */
import { createHash } from "node:crypto";
import { countTokens } from "../tokens/index.ts";

export interface DocumentProof {
  /** The block's `index` attribute (1-based), or its position when the attribute is missing. */
  index: number;
  /** The block's `source` attribute, unescaped ("" when missing). */
  source: string;
  tokens: number;
  sha256: string;
}

export interface FoundDocument {
  index: number;
  source: string;
  attributes: Record<string, string>;
  text: string;
}

/** The product's framing: `<document boundary="B" …>\nTEXT\n</document boundary="B">`. */
const OPENER = /<document(?=[\s>])/;
const BOUNDARY_ATTR = /^<document\s+boundary="(b-[0-9a-f]{8,64})"/;
/** The older framing without a boundary (hand-written requests): `<document …>\nTEXT\n</document>`. */
const LEGACY_BLOCK = /<document((?:\s+[A-Za-z_:][-\w:.]*="[^"]*")*)\s*>\n([\s\S]*?)\n<\/document>/g;
const ATTR = /([A-Za-z_:][-\w:.]*)="([^"]*)"/g;

export const unescapeAttr = (s: string) =>
  s.replace(/&(quot|lt|gt|apos|amp);/g, (_, e: string) => ({ quot: '"', lt: "<", gt: ">", apos: "'", amp: "&" })[e]!);

/**
 * The block pattern of a message. The first document opener of the message decides: when it
 * carries a boundary token, only blocks framed with that same token are documents, so text
 * inside a document (a stray `</document>`, a forged opener, a forged boundary) stays part of
 * it. Openers without a boundary fall back to the older framing.
 */
function blockPattern(text: string): RegExp {
  const boundary = boundaryOf(text);
  if (!boundary) return LEGACY_BLOCK;
  return new RegExp(`<document\\s+boundary="${boundary}"((?:\\s+[A-Za-z_:][-\\w:.]*="[^"]*")*)\\s*>\\n([\\s\\S]*?)\\n</document boundary="${boundary}">`, "g");
}

/** The boundary token of the first document opener in `text`, or null (older framing or none). */
export function boundaryOf(text: string): string | null {
  const first = OPENER.exec(text);
  return first ? (BOUNDARY_ATTR.exec(text.slice(first.index, first.index + 100))?.[1] ?? null) : null;
}

/** Every document block in `text`, in order. */
export function findDocuments(text: string, startOrdinal = 1): FoundDocument[] {
  const out: FoundDocument[] = [];
  let ordinal = startOrdinal;
  for (const m of text.matchAll(blockPattern(text))) {
    const attributes: Record<string, string> = {};
    for (const a of m[1]!.matchAll(ATTR)) attributes[a[1]!] = unescapeAttr(a[2]!);
    const idx = Number(attributes.index);
    out.push({ index: Number.isInteger(idx) && idx > 0 ? idx : ordinal, source: attributes.source ?? "", attributes, text: m[2]! });
    ordinal++;
  }
  return out;
}

/** `text` with every document block removed. */
export const withoutDocuments = (text: string) => text.replace(blockPattern(text), "");

export function proveDocument(d: FoundDocument): DocumentProof {
  return { index: d.index, source: d.source, tokens: countTokens(d.text), sha256: createHash("sha256").update(d.text, "utf8").digest("hex") };
}

export function proofHeader(model: string, promptTokens: number, documents: number): string {
  return `longdoc-sim: model=${model} prompt_tokens=${promptTokens} documents=${documents}`;
}

export const proofLine = (p: DocumentProof) => `document ${p.index} (${p.source.replace(/[\r\n]+/g, " ")}): tokens=${p.tokens} sha256=${p.sha256}`;

/** The proof block: header line plus one line per document. */
export function proofText(model: string, promptTokens: number, docs: DocumentProof[]): string {
  return [proofHeader(model, promptTokens, docs.length), ...docs.map(proofLine)].join("\n");
}

const LINE = /document (\d+) \(([^\n]*?)\): tokens=(\d+) sha256=([0-9a-f]{64})/g;
const HEADER = /longdoc-sim: model=(\S+) prompt_tokens=(\d+) documents=(\d+)/;

/** Text to scan: a JSON answer's string values (the proof may sit inside one), else the raw text. */
function scanText(answerText: string): string {
  const t = answerText.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      const strings: string[] = [];
      const walk = (v: unknown): void => {
        if (typeof v === "string") strings.push(v);
        else if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === "object") Object.values(v).forEach(walk);
      };
      walk(JSON.parse(t));
      return strings.join("\n");
    } catch {
      // not JSON after all (or truncated): fall through
    }
  }
  return answerText;
}

/** The documents the simulator reported receiving, parsed from an answer (text or JSON). */
export function parseSimProof(answerText: string): DocumentProof[] {
  const out: DocumentProof[] = [];
  for (const m of scanText(answerText).matchAll(LINE)) {
    out.push({ index: Number(m[1]), source: m[2]!, tokens: Number(m[3]), sha256: m[4]! });
  }
  return out;
}

/** The header of the proof: model, prompt tokens and document count the simulator saw; null if absent. */
export function parseSimHeader(answerText: string): { model: string; promptTokens: number; documents: number } | null {
  const m = HEADER.exec(scanText(answerText));
  return m ? { model: m[1]!, promptTokens: Number(m[2]), documents: Number(m[3]) } : null;
}
