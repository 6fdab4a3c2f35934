/**
 * The places a citation can name in a document's extracted text (shared/documents): PDF pages
 * after their `--- page N ---` marker lines, workbook sheets after their `## Sheet: NAME` headings,
 * or the whole text of a document without either. The prompt's instruction and the check read
 * the same split, so the model is asked to cite exactly what is checked.
 */

export type PlaceKind = "pages" | "sheets" | "none";

export interface Place {
  /** The page number (pages), the sheet name (sheets), or null (the whole document). */
  label: number | string | null;
  text: string;
}

export interface DocumentPlaces {
  kind: PlaceKind;
  places: Place[];
}

/** A page's marker, or the one line of a run of empty pages (`--- pages 2–2001: no text ---`: no place of its own). */
const PAGE_MARKER = /^--- (?:page (\d+)|pages \d+–\d+: no text) ---$/gm;
/** The sheet heading of xlsx.ts; a hidden sheet's label is not part of its name. */
const SHEET_HEADING = /^## Sheet: (.*?)(?: \((?:very )?hidden\))?$/gm;

/** Which kind of places a document has: its text starts with a page marker (PDF) or a sheet heading (XLSX). */
export function placeKind(text: string): PlaceKind {
  if (/^--- (?:page 1|pages 1–\d+: no text) ---\n/.test(text)) return "pages";
  if (/^## Sheet: /.test(text)) return "sheets";
  return "none";
}

/** Splits a document's text at its markers; the marker lines themselves are not part of any place. */
export function splitPlaces(text: string): DocumentPlaces {
  const kind = placeKind(text);
  if (kind === "none") return { kind, places: [{ label: null, text }] };
  const pattern = kind === "pages" ? PAGE_MARKER : SHEET_HEADING;
  const places: Place[] = [];
  let open: { label: number | string; from: number } | null = null;
  for (const m of text.matchAll(pattern)) {
    if (open) places.push({ label: open.label, text: text.slice(open.from, m.index) });
    open = kind === "pages" && m[1] === undefined ? null : { label: kind === "pages" ? Number(m[1]) : m[1]!, from: m.index + m[0].length };
  }
  if (open) places.push({ label: open.label, text: text.slice(open.from) });
  return { kind, places };
}
