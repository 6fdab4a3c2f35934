/**
 * What `citations: verify` does to an item's result: its checked citations, and the
 * `minCitationScore` gate that fails an item as `ungrounded` (its answer and citations kept).
 */
import { citationScore, verifyCitations, type CitationsResult, type CitedDocument } from "./index.ts";

export interface CitationSpec {
  citations?: "off" | "verify" | undefined;
  minCitationScore?: number | undefined;
  output: { format: "text" | "json" };
}

export interface ItemCitations {
  /** result.json's `citations`. */
  citations: CitationsResult;
  /** Set when the score is below the job's minCitationScore. */
  ungrounded: { kind: "ungrounded"; message: string } | null;
}

/** The item's citations, checked against the documents of its call; null when the job does not verify citations. */
export function verifyItemCitations(spec: CitationSpec, answer: string, documents: readonly CitedDocument[]): ItemCitations | null {
  if (spec.citations !== "verify") return null;
  const citations = verifyCitations(answer, documents, { format: spec.output.format });
  const min = spec.minCitationScore;
  return { citations, ungrounded: min !== undefined && citations.score < min ? { kind: "ungrounded", message: ungroundedMessage(citations, min) } : null };
}

function ungroundedMessage(c: CitationsResult, min: number): string {
  const kept = 'the answer and its checked citations are kept (result.json "citations")';
  if (c.total === 0) return `the answer cites nothing, so its citation score is 0, below minCitationScore ${min} (citations: verify asks for a quote behind every figure and claim); ${kept}`;
  return (
    `citation score ${c.score} is below minCitationScore ${min}: of ${c.total} quote(s), ${c.supported} found on the page or sheet cited, ` +
    `${c.wrongPage} only elsewhere in the document, ${c.notFound} nowhere in it; ${kept}`
  );
}

/** The manifest's job-level summary of the items whose citations were checked. */
export interface CitationsSummary {
  /** Items with checked citations. */
  items: number;
  total: number;
  supported: number;
  wrongPage: number;
  notFound: number;
  /** supported / total over every checked quote of the job (0 when there are none). */
  score: number;
  /** The lowest item score. */
  lowestItemScore: number;
  /** Items failed `ungrounded`. */
  ungrounded: number;
}

export function summariseCitations(items: readonly { citations: CitationsResult; ungrounded: boolean }[]): CitationsSummary | null {
  if (!items.length) return null;
  const sum = (f: (c: CitationsResult) => number) => items.reduce((s, i) => s + f(i.citations), 0);
  const total = sum((c) => c.total);
  const supported = sum((c) => c.supported);
  return {
    items: items.length,
    total,
    supported,
    wrongPage: sum((c) => c.wrongPage),
    notFound: sum((c) => c.notFound),
    score: citationScore(supported, total),
    lowestItemScore: Math.min(...items.map((i) => i.citations.score)),
    ungrounded: items.filter((i) => i.ungrounded).length,
  };
}
