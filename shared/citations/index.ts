/**
 * Citation checking (`citations: verify`): every quote an answer cites is looked up in the
 * extracted text the model was given, at the place the citation names. Pure: no storage, no model.
 *
 *   verifyCitations(answer, documents) → { total, supported, wrongPage, notFound, score, list }
 *
 * Each document is split into its places (places.ts) and folded (fold.ts) once per call, into one
 * string with the offset where each place starts; a quote is then a string search over it, so an
 * answer with dozens of citations over a 250,000-token filing is checked in milliseconds.
 */
import { fold } from "./fold.ts";
import { parseCitations, sameDocument, type ParsedCitation } from "./parse.ts";
import { splitPlaces, type PlaceKind } from "./places.ts";

export { fold } from "./fold.ts";
export { parseCitations, type ParsedCitation } from "./parse.ts";
export { placeKind, splitPlaces, type PlaceKind } from "./places.ts";
export { citationInstruction } from "./instruction.ts";

export type CitationStatus = "supported" | "wrong_page" | "not_found";

/** One checked citation, as result.json lists it (the contract's shape). */
export interface CheckedCitation {
  quote: string;
  page: number | null;
  sheet: string | null;
  document: string;
  status: CitationStatus;
  /** Where the quote was found instead (pages, or sheet names); empty unless `wrong_page`. */
  foundOn: (number | string)[];
}

/** result.json's `citations` object. */
export interface CitationsResult {
  total: number;
  supported: number;
  wrongPage: number;
  notFound: number;
  /** supported / total; 0 when the answer cites nothing (it was asked to). */
  score: number;
  list: CheckedCitation[];
}

/** A document as the model saw it: its source and its extracted text (with its page or sheet markers). */
export interface CitedDocument {
  source: string;
  text: string;
}

/**
 * Checks every citation of an answer against the documents of its call. `format: json` reads the
 * citations in the answer's string values, and objects with a `quote` field (a schema's
 * `citations: [{ page, quote }]` array) as citations themselves.
 */
export function verifyCitations(answer: string, documents: readonly CitedDocument[], opts: { format?: "text" | "json" } = {}): CitationsResult {
  const sources = documents.map((d) => d.source);
  const cited = opts.format === "json" ? citationsInJson(answer, sources) : parseCitations(answer, sources);
  const indexes = new Map<CitedDocument, DocumentIndex>();
  const indexOf = (d: CitedDocument) => indexes.get(d) ?? indexes.set(d, indexDocument(d)).get(d)!;
  const list = cited.map((c) => checkCitation(c, documents, indexOf));
  return summarise(list);
}

/** Counts and the score of a list of checked citations. */
export function summarise(list: CheckedCitation[]): CitationsResult {
  const count = (s: CitationStatus) => list.filter((c) => c.status === s).length;
  const supported = count("supported");
  return { total: list.length, supported, wrongPage: count("wrong_page"), notFound: count("not_found"), score: citationScore(supported, list.length), list };
}

/** supported / total to four places; an answer asked to cite that cites nothing scores 0. */
export const citationScore = (supported: number, total: number) => (total === 0 ? 0 : Math.round((supported / total) * 10_000) / 10_000);

/** A document folded once: its places' folded texts end to end, and where each starts. */
interface DocumentIndex {
  source: string;
  kind: PlaceKind;
  folded: string;
  starts: number[];
  labels: (number | string | null)[];
}

export function indexDocument(doc: CitedDocument): DocumentIndex {
  const { kind, places } = splitPlaces(doc.text);
  const parts: string[] = [];
  const starts: number[] = [];
  let at = 0;
  for (const p of places) {
    const f = fold(p.text);
    starts.push(at);
    parts.push(f);
    at += f.length;
  }
  return { source: doc.source, kind, folded: parts.join(""), starts, labels: places.map((p) => p.label) };
}

/** The place holding folded position `pos` (the last place starting at or before it). */
function placeAt(ix: DocumentIndex, pos: number): number {
  let lo = 0;
  let hi = ix.starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ix.starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const placeEnd = (ix: DocumentIndex, place: number) => ix.starts[place + 1] ?? ix.folded.length;

/**
 * Where the quote occurs: for each occurrence, the places it covers. A quote with an ellipsis
 * ("revenue ... rose") matches when its pieces occur in order, the later ones starting before the
 * end of the place after the first's (a quote may run over a page break).
 */
function occurrences(ix: DocumentIndex, pieces: string[]): { first: number; last: number }[] {
  const found: { first: number; last: number }[] = [];
  const [head, ...rest] = pieces;
  // Where each later piece next occurs: searches for a piece only ever start further on, so the
  // last answer holds until the search passes it and the whole text is scanned once per piece
  // (a common first piece, such as "the ... ", would otherwise rescan the text at every occurrence).
  const next = rest.map(() => -2);
  for (let s = ix.folded.indexOf(head!); s >= 0; s = ix.folded.indexOf(head!, s + 1)) {
    const first = placeAt(ix, s);
    const limit = placeEnd(ix, Math.min(first + 1, ix.starts.length - 1));
    let end = s + head!.length;
    let ok = true;
    for (const [j, piece] of rest.entries()) {
      if (next[j] !== -1 && next[j]! < end) next[j] = ix.folded.indexOf(piece, end);
      const t = next[j]!;
      if (t < 0 || t >= limit) {
        ok = false;
        break;
      }
      end = t + piece.length;
    }
    if (ok) found.push({ first, last: placeAt(ix, Math.max(s, end - 1)) });
  }
  return found;
}

const ELLIPSIS = /\.{3,}|…|\[\.\.\.\]/;

function checkIn(ix: DocumentIndex, c: ParsedCitation): { status: CitationStatus; foundOn: (number | string)[] } {
  const pieces = c.quote.split(ELLIPSIS).map(fold).filter((p) => p.length > 0);
  if (!pieces.length) return { status: "not_found", foundOn: [] };
  const hits = occurrences(ix, pieces);
  if (!hits.length) return { status: "not_found", foundOn: [] };
  // A document without pages or sheets has one place: the quote being in it is all there is to check.
  if (ix.kind === "none") return { status: "supported", foundOn: [] };
  const named = ix.kind === "pages" ? c.page : c.sheet === null ? null : c.sheet.toLowerCase();
  const label = (i: number) => {
    const l = ix.labels[i]!;
    return typeof l === "string" ? l.trim().toLowerCase() : l;
  };
  if (named !== null && hits.some((h) => [...range(h.first, h.last)].some((i) => label(i) === named))) return { status: "supported", foundOn: [] };
  const foundOn = [...new Set(hits.map((h) => ix.labels[h.first]!))].filter((l) => l !== null);
  return { status: "wrong_page", foundOn };
}

function* range(a: number, b: number) {
  for (let i = a; i <= b; i++) yield i;
}

const RANK: Record<CitationStatus, number> = { supported: 2, wrong_page: 1, not_found: 0 };

function checkCitation(c: ParsedCitation, documents: readonly CitedDocument[], indexOf: (d: CitedDocument) => DocumentIndex): CheckedCitation {
  const named = c.document === null ? undefined : documents.find((d) => sameDocument(d.source, c.document!));
  // An unnamed citation (or one naming a file the call did not have) is looked for in every document of the call.
  const candidates = named ? [named] : documents;
  let best: { doc: CitedDocument; status: CitationStatus; foundOn: (number | string)[] } | null = null;
  for (const doc of candidates) {
    const r = checkIn(indexOf(doc), c);
    if (!best || RANK[r.status] > RANK[best.status]) best = { doc, ...r };
    if (r.status === "supported") break;
  }
  const document = best && best.status !== "not_found" ? best.doc.source : (named?.source ?? c.document ?? documents[0]?.source ?? "");
  return { quote: c.quote, page: c.page, sheet: c.sheet, document, status: best?.status ?? "not_found", foundOn: best?.foundOn ?? [] };
}

/** The citations of a JSON answer: markup in its string values, and `{ quote, page?, sheet?, document? }` objects. */
function citationsInJson(answer: string, sources: readonly string[]): ParsedCitation[] {
  let value: unknown;
  try {
    value = JSON.parse(answer);
  } catch {
    return parseCitations(answer, sources);
  }
  const out: ParsedCitation[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") out.push(...parseCitations(v, sources));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.quote === "string" && o.quote.trim()) {
        const page = typeof o.page === "number" ? o.page : typeof o.page === "string" && /^\d+$/.test(o.page.trim()) ? Number(o.page) : null;
        out.push({ quote: o.quote.trim(), page, sheet: typeof o.sheet === "string" ? o.sheet : null, document: typeof o.document === "string" ? o.document : null, offset: 0, raw: "" });
        for (const [k, x] of Object.entries(o)) if (!["quote", "page", "sheet", "document"].includes(k)) walk(x);
      } else Object.values(o).forEach(walk);
    }
  };
  walk(value);
  return out;
}
