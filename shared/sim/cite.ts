/**
 * The simulator's citations, for calls whose prompt carries the citation instruction
 * (`citations: verify`): real passages of the documents it was given, copied from their pages or
 * sheets, in the contract's markup, so the worker's check has something true to find.
 *
 * Each answer cites four passages of each document (at most three documents), spread over it and
 * chosen by a hash of the document and the question. Three are cited where they are; the fourth
 * names another page or sheet (`wrong_page`), as a real model sometimes does, so a demo shows both
 * outcomes (score 0.75 for a document with several places). The `citations` fault turns two of the
 * correct ones into passages the document does not contain (`not_found`; score 0.25). A JSON answer
 * carries them in its schema's `citations` array, when it has one.
 */
import { fold } from "../citations/fold.ts";
import { baseName } from "../citations/parse.ts";
import { splitPlaces, type Place } from "../citations/places.ts";

const MAX_DOCUMENTS = 3;
const QUOTE_WORDS = 12;

interface Passage {
  place: number;
  quote: string;
}

/** FNV-1a: a stable small hash, so the same document and question cite the same passages. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A passage a model could quote from a line: a row's first cells (workbooks) or the line's first words. */
function quoteOf(line: string, sheets: boolean): string | null {
  const t = line.trim();
  if (!t || /["“”[\]]/.test(t) || t.startsWith("## Sheet:")) return null;
  if (sheets) {
    if (!t.startsWith("|") || /^\|[-| ]+\|$/.test(t)) return null;
    // The row number leads each row; the header row holds only column letters.
    const cells = t.split("|").map((c) => c.trim()).filter(Boolean).slice(1);
    if (cells.length < 2 || cells.every((c) => /^[A-Z]{1,3}$/.test(c))) return null;
    return cells.slice(0, 3).join(" | ").replace(/<br>/g, " ");
  }
  const words = t.split(/\s+/);
  if (words.length < 5 || t.length < 25) return null;
  return words.slice(0, QUOTE_WORDS).join(" ");
}

function passagesOf(places: Place[], sheets: boolean): Passage[][] {
  return places.map((p, place) =>
    p.text
      .split("\n")
      .map((l) => quoteOf(l, sheets))
      .filter((q): q is string => q !== null)
      .map((quote) => ({ place, quote })),
  );
}

/** One citation the simulated model writes. */
export interface SimCitation {
  /** The document's file name; null in a call over one document. */
  document: string | null;
  label: number | string | null;
  quote: string;
  /** How the check should find it: the simulator knows, so tests and demos can say. */
  intent: "right" | "wrong_page" | "invented";
}

/** Four citations per document (see the module comment). */
export function simulatedCitationList(documents: { source: string; text: string }[], key: string, opts: { invent?: boolean | undefined; named?: boolean } = {}): SimCitation[] {
  const out: SimCitation[] = [];
  // Over several documents (or one section of a packed call's answer) the file name leads.
  const several = documents.length > 1 || opts.named === true;
  for (const doc of documents.slice(0, MAX_DOCUMENTS)) {
    const { kind, places } = splitPlaces(doc.text);
    const usable = passagesOf(places, kind === "sheets").filter((p) => p.length > 0);
    if (!usable.length) continue;
    const document = several ? baseName(doc.source) : null;
    const h = hash(`${doc.source}\0${key}`);
    const pick = (k: number): Passage => {
      const list = usable[(h + Math.floor((k * usable.length) / 4)) % usable.length]!;
      return list[(h >>> 8) % list.length]!;
    };
    for (let k = 0; k < 4; k++) {
      const p = pick(k);
      const label = places[p.place]!.label;
      if (opts.invent && (k === 1 || k === 2)) {
        out.push({ document, label, quote: `the simulator invented this passage (${k}) about ${baseName(doc.source)}`, intent: "invented" });
        continue;
      }
      const elsewhere = k === 3 ? misplaced(places, p) : null;
      out.push(elsewhere === null ? { document, label, quote: p.quote, intent: "right" } : { document, label: elsewhere, quote: p.quote, intent: "wrong_page" });
    }
  }
  return out;
}

const markup = (c: SimCitation) => {
  const place = c.label === null ? "" : typeof c.label === "number" ? `p. ${c.label}` : `sheet ${c.label}`;
  const head = [c.document, place].filter(Boolean).join(" ");
  return `[${head}${head ? ": " : ""}"${c.quote}"]`;
};

const SENTENCE: Record<SimCitation["intent"], string> = {
  right: "A passage",
  wrong_page: "A passage cited on the wrong page",
  invented: "A figure the document does not give",
};

/** The cited lines of a text answer: four per document. */
export function simulatedCitations(documents: { source: string; text: string }[], key: string, opts: { invent?: boolean | undefined; named?: boolean } = {}): string[] {
  return simulatedCitationList(documents, key, opts).map((c) => `- ${SENTENCE[c.intent]} ${markup(c)}.`);
}

/**
 * A JSON answer whose schema has a `citations` array of objects with a `quote` property gets the
 * citations there, each with the `page`, `sheet` and `document` properties its items declare.
 */
export function withJsonCitations(value: unknown, schema: unknown, cites: SimCitation[]): unknown {
  const props = (schema as { properties?: Record<string, unknown> } | null)?.properties;
  const items = (props?.citations as { type?: unknown; items?: { properties?: Record<string, unknown> } } | undefined)?.items?.properties;
  if (!items?.quote || !value || typeof value !== "object" || Array.isArray(value)) return value;
  const list = cites.map((c) => ({
    quote: c.quote,
    ...(items.page && typeof c.label === "number" ? { page: c.label } : {}),
    ...(items.sheet && typeof c.label === "string" ? { sheet: c.label } : {}),
    ...(items.document && c.document !== null ? { document: c.document } : {}),
  }));
  return { ...(value as Record<string, unknown>), citations: list };
}

/** The page or sheet a passage is cited on instead of its own (null for a document of one place). */
function misplaced(places: Place[], p: Passage): number | string | null {
  const quote = fold(p.quote);
  for (let step = 1; step < places.length; step++) {
    const other = (p.place + step) % places.length;
    if (!fold(places[other]!.text).includes(quote) && places[other]!.label !== null) return places[other]!.label;
  }
  return null;
}
