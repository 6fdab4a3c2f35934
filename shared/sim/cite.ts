/**
 * The simulator's citations, for calls whose prompt carries the citation instruction
 * (`citations: verify`): real passages of the documents it was given, copied from their pages or
 * sheets, in the contract's markup, so the worker's check has something true to find.
 *
 * Each answer cites four passages of each document (at most three documents), spread over it and
 * chosen by a hash of the document and the question. Three are cited where they are; the fourth
 * names another page or sheet (`wrong_page`), as a real model sometimes does, so a demo shows both
 * outcomes (score 0.75 for a document with several places). The `citations` fault turns two of the
 * correct ones into passages the document does not contain (`not_found`; score 0.25).
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

const markup = (name: string, label: number | string | null, quote: string) =>
  `[${name}${label === null ? (name ? ": " : "") : typeof label === "number" ? `p. ${label}: ` : `sheet ${label}: `}"${quote}"]`;

/** The cited lines of an answer: four per document (see the module comment). */
export function simulatedCitations(documents: { source: string; text: string }[], key: string, opts: { invent?: boolean | undefined; named?: boolean } = {}): string[] {
  const lines: string[] = [];
  // Over several documents (or one section of a packed call's answer) the file name leads.
  const several = documents.length > 1 || opts.named === true;
  for (const doc of documents.slice(0, MAX_DOCUMENTS)) {
    const { kind, places } = splitPlaces(doc.text);
    const byPlace = passagesOf(places, kind === "sheets");
    const usable = byPlace.filter((p) => p.length > 0);
    if (!usable.length) continue;
    const name = several ? `${baseName(doc.source)}${kind === "none" ? "" : " "}` : "";
    const h = hash(`${doc.source}\0${key}`);
    const pick = (k: number): Passage => {
      const list = usable[(h + Math.floor((k * usable.length) / 4)) % usable.length]!;
      return list[(h >>> 8) % list.length]!;
    };
    for (let k = 0; k < 4; k++) {
      const p = pick(k);
      const label = places[p.place]!.label;
      if (opts.invent && (k === 1 || k === 2)) {
        lines.push(`- A figure the document does not give ${markup(name, label, `the simulator invented this passage (${k}) about ${baseName(doc.source)}`)}.`);
      } else if (k === 3) {
        lines.push(`- ${misplaced(places, p, name) ?? `A passage ${markup(name, label, p.quote)}.`}`);
      } else lines.push(`- A passage ${markup(name, label, p.quote)}.`);
    }
  }
  return lines;
}

/** The passage cited on a page or sheet it is not on (null for a document of one place). */
function misplaced(places: Place[], p: Passage, name: string): string | null {
  const quote = fold(p.quote);
  for (let step = 1; step < places.length; step++) {
    const other = (p.place + step) % places.length;
    if (!fold(places[other]!.text).includes(quote) && places[other]!.label !== null) return `A passage cited on the wrong page ${markup(name, places[other]!.label, p.quote)}.`;
  }
  return null;
}
