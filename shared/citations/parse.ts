/**
 * The citation markup of the contract, read out of an answer:
 *
 *   [p. N: "exact quote"]            a PDF page, N as `longdoc extract` numbers it
 *   [sheet NAME: "exact quote"]      a workbook's sheet
 *   ["exact quote"]                  a document without pages
 *   [report.pdf p. N: "..."]         the document's file name first, in a call over several documents
 *
 * Read leniently, as models write it: curly quotes, `page N` or `pp. N` for `p. N`, a comma or dash
 * for the colon or none, spaces inside the brackets, a quote over several lines.
 */

export interface ParsedCitation {
  /** The quote as the model wrote it (between the quote marks). */
  quote: string;
  /** The document named before the place, as written; null when none is named. */
  document: string | null;
  page: number | null;
  sheet: string | null;
  /** Where the citation starts in the text it was read from, and the citation as written there. */
  offset: number;
  raw: string;
}

/**
 * `[` head `"` quote `"` `]`: the head holds no brackets, quote marks or line breaks, and the quote
 * ends at the first closing quote mark followed by `]`. Quotes are capped so that a stray `[` cannot
 * swallow the rest of a long answer.
 */
const CITATION = /\[([^[\]"“”\n]{0,300}?)\s*["“]([^\]]{1,2000}?)["”]\s*\]/g;
const PAGE_HEAD = /^(?:(.*?)\s+)?(?:p\.|pp\.|page)\s*(\d+)(?:\s*[-–]\s*\d+)?$/i;
const SHEET_HEAD = /^(?:(.*?)\s+)?sheet\s+(.+)$/i;

/**
 * The citations in `text`, in order. `documents` (sources, as the prompt named them) lets a file
 * name that contains spaces or the word "sheet" be read whole.
 */
export function parseCitations(text: string, documents: readonly string[] = []): ParsedCitation[] {
  const out: ParsedCitation[] = [];
  for (const m of text.matchAll(CITATION)) {
    const quote = m[2]!.trim();
    if (!quote) continue;
    // `[p. 3: "..."]`, and as models also write it, `[p. 3, "..."]` or `[p. 3 - "..."]`.
    const head = m[1]!.trim().replace(/\s*[:,;–—-]$/, "").trim();
    const place = readHead(head, documents);
    if (!place) continue;
    out.push({ quote, ...place, offset: m.index, raw: m[0] });
  }
  return out;
}

function readHead(head: string, documents: readonly string[]): Omit<ParsedCitation, "quote" | "offset" | "raw"> | null {
  const named = knownDocumentPrefix(head, documents);
  const rest = named ? head.slice(named.length).trim() : head;
  if (!rest) return { document: named, page: null, sheet: null };
  const page = PAGE_HEAD.exec(rest);
  if (page) return { document: named ?? page[1] ?? null, page: Number(page[2]), sheet: null };
  const sheet = SHEET_HEAD.exec(rest);
  if (sheet) return { document: named ?? sheet[1] ?? null, page: null, sheet: sheet[2]!.trim() };
  // Anything else names a document (`[memo.md: "..."]`), or is not a citation at all (`[1]`, `[note: ...]`
  // are left to the text): only a head that names a given document, or looks like a file name, counts.
  if (named === null && (documents.some((d) => sameDocument(d, rest)) || /\.[a-z0-9]{2,5}$/i.test(rest))) return { document: rest, page: null, sheet: null };
  return null;
}

/** The longest given document name (source or its file name) that the head starts with. */
function knownDocumentPrefix(head: string, documents: readonly string[]): string | null {
  let best: string | null = null;
  const lower = head.toLowerCase();
  for (const d of documents) {
    for (const name of [d, baseName(d)]) {
      const n = name.toLowerCase();
      if (lower.startsWith(n) && (lower.length === n.length || /\s/.test(lower[n.length]!)) && (best === null || name.length > best.length)) best = head.slice(0, name.length);
    }
  }
  return best;
}

export const baseName = (source: string) => source.slice(source.lastIndexOf("/") + 1);

/** Whether a name the model wrote is this document's source or file name (case aside). */
export function sameDocument(source: string, written: string): boolean {
  const w = written.trim().toLowerCase();
  return w === source.toLowerCase() || w === baseName(source).toLowerCase();
}
