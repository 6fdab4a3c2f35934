/**
 * What `citations: verify` does to an item's result: its checked citations, and the
 * `minCitationScore` gate that fails an item as `ungrounded` (its answer and citations kept).
 */
import { citationScore, verifyCitations, type CitationsResult, type CitedDocument } from "./index.ts";
import { splitPlaces } from "./places.ts";

export interface CitationSpec {
  citations?: "off" | "verify" | undefined;
  minCitationScore?: number | undefined;
  output: { format: "text" | "json" };
}

export interface ItemCitations {
  /** result.json's `citations`. */
  citations: CitationsResult;
  /** The text of every page or sheet a reader needs to check them (items/<itemId>/cited-pages.json, shown by report.html). */
  places: CitedPlace[];
  /** Set when the score is below the job's minCitationScore. */
  ungrounded: { kind: "ungrounded"; message: string } | null;
}

/** The item's citations, checked against the documents of its call; null when the job does not verify citations. */
export function verifyItemCitations(spec: CitationSpec, answer: string, documents: readonly CitedDocument[]): ItemCitations | null {
  if (spec.citations !== "verify") return null;
  const citations = verifyCitations(answer, documents, { format: spec.output.format });
  const min = spec.minCitationScore;
  return { citations, places: citedPlaces(citations, documents), ungrounded: min !== undefined && citations.score < min ? { kind: "ungrounded", message: ungroundedMessage(citations, min) } : null };
}

/** A page or sheet (or a whole document without either) as the model saw it. */
export interface CitedPlace {
  document: string;
  page: number | null;
  sheet: string | null;
  text: string;
}

/** The most of one place's text kept for the reader; a PDF page is a few thousand characters. */
const MAX_PLACE_CHARS = 20_000;
/** The most places kept per item. */
const MAX_PLACES = 200;

/** The place each citation is shown with: where the quote is (supported, wrong_page), else the place it names. */
export function shownPlace(c: CitationsResult["list"][number]): { page: number | null; sheet: string | null } {
  const at = c.status === "wrong_page" ? c.foundOn[0] : undefined;
  if (at !== undefined) return typeof at === "number" ? { page: at, sheet: null } : { page: null, sheet: at };
  return { page: c.page, sheet: c.sheet };
}

export const placeKey = (document: string, p: { page: number | null; sheet: string | null }) => `${document}\0${p.page ?? ""}\0${(p.sheet ?? "").toLowerCase()}`;

function citedPlaces(citations: CitationsResult, documents: readonly CitedDocument[]): CitedPlace[] {
  const out = new Map<string, CitedPlace>();
  const split = new Map<string, ReturnType<typeof splitPlaces>>();
  for (const c of citations.list) {
    const doc = documents.find((d) => d.source === c.document);
    if (!doc || out.size >= MAX_PLACES) continue;
    const places = split.get(doc.source) ?? split.set(doc.source, splitPlaces(doc.text)).get(doc.source)!;
    // A document without pages or sheets is one place, whatever page the citation named.
    const want = places.kind === "none" ? { page: null, sheet: null } : shownPlace(c);
    const key = placeKey(doc.source, want);
    if (out.has(key)) continue;
    const place =
      places.kind === "none"
        ? places.places[0]
        : places.places.find((p) => (places.kind === "pages" ? p.label === want.page : typeof p.label === "string" && p.label.trim().toLowerCase() === want.sheet?.trim().toLowerCase()));
    if (place) out.set(key, { document: doc.source, ...want, text: place.text.trim().slice(0, MAX_PLACE_CHARS) });
  }
  return [...out.values()];
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
