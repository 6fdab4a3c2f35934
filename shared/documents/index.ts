/**
 * Document loading: bytes + name → the text the model sees (one whole document per call).
 *
 * Formats and what their text looks like (details in each module):
 * - pdf       `--- page N ---` marker line before each page's text (N = 1-based page number);
 *             reading order rebuilt from positions (multi-column pages, tables as aligned rows).
 *             `pages` = page count.                                                   (pdf.ts)
 * - docx      Markdown-flavoured: `#` headings, `- `/`1. ` lists, Markdown tables.     (docx.ts)
 * - xlsx      `## Sheet: Name` + a Markdown table per sheet with column letters and row
 *             numbers; cached formula values; hidden sheets included and labelled.
 *             `sheets` = all sheet names.                                             (xlsx.ts)
 * - csv       one Markdown table, first row as the header.                             (csv.ts)
 * - html      readable text: no scripts/styles/head/hidden elements, `Title: ...` first line,
 *             `#` headings, lists, Markdown tables.                                   (html.ts)
 * - markdown, text, json: as is (JSON is not re-indented).                              (text.ts)
 *
 * Text formats are decoded from the encoding the job states, a BOM, UTF-8, or the legacy encoding
 * the detector is sure of (GBK/GB18030, Big5, Shift-JIS, EUC-KR, Windows-1252...; encoding.ts);
 * when it cannot be told the file fails with document_encoding, never mojibake. `encoding` names
 * the one used.
 *
 * Every text: decoded (BOM dropped), LF line endings, no trailing spaces, at most two
 * blank lines in a row, exactly one final newline. `chars` counts Unicode code points of `text`.
 *
 * Errors are DocumentError with a message that starts with the file name:
 * document_empty (0 bytes / no text), document_too_large (over maxBytes, or a DOCX/XLSX that
 * would inflate past maxUncompressedBytes), document_unsupported (other formats, binary junk),
 * document_encrypted (password needed), document_corrupt, document_no_text (a PDF without a
 * text layer: OCR is not enabled), document_encoding (a text whose encoding cannot be told),
 * input_too_long (with maxTokens: more tokens than that by a lower bound, found early).
 */
import { LongdocError } from "../errors.ts";
import { detectFormat as detect, extensionOf } from "./detect.ts";
import { declaredCharset, htmlToText } from "./html.ts";
import { decodeTextFile, loadPlain } from "./text.ts";
import { minTokens } from "../tokens/bound.ts";
import { countChars, docError, finishText, formatBytes, hasText, tooManyTokens } from "./util.ts";
// pdf.js, mammoth, exceljs and csv-parse are imported when first needed (cold starts).

export type { DocFormat } from "./detect.ts";
import type { DocFormat } from "./detect.ts";

export interface LoadedDocument {
  format: DocFormat;
  /** The text exactly as the model sees it. */
  text: string;
  /** Size of the input file. */
  bytes: number;
  /** Unicode code points in `text`. */
  chars: number;
  /** PDF only: page count. */
  pages?: number;
  /** XLSX only: every sheet name in workbook order (hidden sheets included). */
  sheets?: string[];
  /** Text formats only (text, Markdown, JSON, CSV, HTML): the encoding the bytes were read in (TextDecoder's name). */
  encoding?: string;
}

export interface LoadOptions {
  /** Reject inputs larger than this many bytes (default 100 MiB). */
  maxBytes?: number;
  /** Cap on the total uncompressed size of a DOCX/XLSX ZIP, checked before inflating (default 512 MiB). */
  maxUncompressedBytes?: number;
  /**
   * The most tokens the text may have to be of use (the model's input limit). A document whose
   * text has more by a sound lower bound (tokens/bound.ts) fails with input_too_long, before it
   * is extracted in full (DOCX, PDF) and before anyone counts it.
   */
  maxTokens?: number;
  /** The encoding of a text file, as the job file states it (`encoding: gbk`): decides over detection. */
  encoding?: string;
}

export const DEFAULT_MAX_BYTES = 104_857_600;
export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024;

export { pageMarker } from "./util.ts";

/**
 * The document's format, from its content first (magic bytes, ZIP entry names, sniffing) with the
 * extension as a hint. Throws DocumentError `document_unsupported` for anything else.
 */
export function detectFormat(bytes: Uint8Array, name: string): DocFormat {
  return detect(bytes, name);
}

/** Texts longer than this many characters per token of the limit get the lower-bound check. */
const CHARS_PER_TOKEN_TO_BOUND = 5;

const CFB = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

/** Load a document and extract its text (see the module comment). */
export async function loadDocument(input: { bytes: Uint8Array; name: string }, opts: LoadOptions = {}): Promise<LoadedDocument> {
  const { bytes, name } = input;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxUncompressed = opts.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED_BYTES;
  if (bytes.length === 0) throw docError("document_empty", name, "the file is empty (0 bytes)");
  if (bytes.length > maxBytes) {
    throw docError("document_too_large", name, `${formatBytes(bytes.length)} is over the limit of ${formatBytes(maxBytes)} (maxBytes)`);
  }
  const format = detectFormat(bytes, name);
  let text: string;
  let pages: number | undefined;
  let sheets: string[] | undefined;
  let encoding: string | undefined;
  /** Whether the loader found nothing for finishText's line rules to change (plain text only). */
  let tidy = false;
  try {
    switch (format) {
      case "pdf": {
        const { loadPdf } = await import("./pdf.ts");
        const r = await loadPdf(bytes, name, { maxTokens: opts.maxTokens });
        text = r.text;
        pages = r.pages;
        break;
      }
      case "docx":
      case "xlsx": {
        if (CFB.every((v, i) => bytes[i] === v)) {
          throw docError("document_encrypted", name, `a password-protected (encrypted) ${format.toUpperCase()}; a password is required to open it, and password-protected files are not supported`);
        }
        if (format === "docx") {
          const { loadDocx } = await import("./docx.ts");
          text = (await loadDocx(bytes, name, maxUncompressed, { maxTokens: opts.maxTokens })).text;
        } else {
          const { loadXlsx } = await import("./xlsx.ts");
          const r = await loadXlsx(bytes, name, maxUncompressed);
          text = r.text;
          sheets = r.sheets;
        }
        break;
      }
      case "csv": {
        const { loadCsv } = await import("./csv.ts");
        ({ text, encoding } = loadCsv(bytes, name, { tsv: ["tsv", "tab"].includes(extensionOf(name)), encoding: opts.encoding }));
        break;
      }
      case "html": {
        const { text: source, encoding: used } = decodeTextFile(bytes, name, { declared: declaredCharset(bytes), encoding: opts.encoding });
        encoding = used;
        const head = source.slice(0, 2048).trimStart().toLowerCase();
        text = htmlToText(source, { xhtml: head.startsWith("<?xml") || head.includes('xmlns="http://www.w3.org/1999/xhtml"') }).text;
        break;
      }
      default:
        ({ text, tidy, encoding } = loadPlain(bytes, name, { encoding: opts.encoding }));
    }
  } catch (e) {
    if (LongdocError.is(e)) throw e;
    throw docError("document_unreadable", name, `could not read the ${format.toUpperCase()} file (${e instanceof Error ? e.message : String(e)})`, e);
  }
  text = finishText(text, { tidy });
  if (!hasText(text)) throw docError("document_empty", name, `no text in this ${format.toUpperCase()} document`);
  // Only a text long enough to be over the limit is bounded (a pass costs about a quarter of an
  // exact count): at 5 characters a token or more, it is about to be counted in full for nothing.
  if (opts.maxTokens !== undefined && text.length > opts.maxTokens * CHARS_PER_TOKEN_TO_BOUND) {
    const atLeast = minTokens(text);
    if (atLeast > opts.maxTokens) throw tooManyTokens(name, atLeast, opts.maxTokens);
  }
  const doc: LoadedDocument = { format, text, bytes: bytes.length, chars: countChars(text) };
  if (pages !== undefined) doc.pages = pages;
  if (sheets !== undefined) doc.sheets = sheets;
  if (encoding !== undefined) doc.encoding = encoding;
  return doc;
}
