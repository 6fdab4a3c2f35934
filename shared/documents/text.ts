/**
 * Byte → string decoding for the text formats, the binary-junk check, and the plain
 * text / Markdown / JSON loaders (which pass the text through as is).
 *
 * Decoding: the encoding the job states, else a BOM (dropped), else UTF-16 without a BOM, else a
 * declared charset (HTML <meta charset>), else UTF-8 when the bytes are valid UTF-8, else the
 * legacy encoding the detector is confident of (GBK/GB18030, Big5, Shift-JIS, EUC-KR,
 * Windows-1252...), else UTF-16 of CJK text without ASCII, else the file fails with
 * document_encoding: see encoding.ts.
 */
import { isUtf8 } from "node:buffer";
import { chooseLegacyEncoding, sniffBom, sniffUtf16, sniffUtf16Cjk, undecidableEncoding, type Candidate } from "./encoding.ts";
import { docError, stripControls } from "./util.ts";

export { sniffBom, type Bom } from "./encoding.ts";

export interface DecodeOptions {
  /** A charset the document declares (HTML <meta charset>). */
  declared?: string;
  /** The encoding the job file states for the document: it decides. */
  encoding?: string;
}

function tryDecoder(label: string): InstanceType<typeof TextDecoder> | undefined {
  try {
    return new TextDecoder(label);
  } catch {
    return undefined;
  }
}

/** The encoding to decode with and the BOM bytes to skip, or the candidates when it cannot be told. */
function resolveEncoding(b: Uint8Array, opts: DecodeOptions): { encoding: string; skip: number } | { candidates: Candidate[] } {
  const bom = sniffBom(b);
  if (opts.encoding) {
    const stated = tryDecoder(opts.encoding.trim().toLowerCase())?.encoding ?? opts.encoding;
    return { encoding: stated, skip: bom === stated ? (bom === "utf-8" ? 3 : 2) : 0 };
  }
  if (bom) return { encoding: bom, skip: bom === "utf-8" ? 3 : 2 };
  const utf16 = sniffUtf16(b);
  if (utf16) return { encoding: utf16, skip: 0 };
  if (opts.declared) {
    const d = tryDecoder(opts.declared.trim().toLowerCase());
    // A page that says utf-16 but has no BOM and no zero bytes is really ASCII-compatible.
    if (d && !d.encoding.startsWith("utf-16")) return { encoding: d.encoding, skip: 0 };
  }
  if (isUtf8(b)) return { encoding: "utf-8", skip: 0 };
  const legacy = chooseLegacyEncoding(b);
  if ("encoding" in legacy) return { encoding: legacy.encoding, skip: 0 };
  const cjk16 = sniffUtf16Cjk(b);
  return cjk16 ? { encoding: cjk16, skip: 0 } : legacy;
}

/**
 * Decode bytes to a string, never failing (format sniffing, a best effort): an undecidable
 * legacy text is read in its most likely encoding, else Windows-1252. The BOM is never part of
 * the result.
 */
export function decodeText(b: Uint8Array, declared?: string): string {
  const r = resolveEncoding(b, { declared });
  if ("encoding" in r) return new TextDecoder(r.encoding).decode(b.subarray(r.skip));
  return new TextDecoder(r.candidates[0]?.encoding ?? "windows-1252").decode(b);
}

/** Decode a document's text and say in which encoding; document_encoding when that cannot be told. */
export function decodeDocument(b: Uint8Array, name: string, opts: DecodeOptions = {}): { text: string; encoding: string } {
  const r = resolveEncoding(b, opts);
  if (!("encoding" in r)) throw undecidableEncoding(name, r.candidates);
  const decoder = tryDecoder(r.encoding);
  if (!decoder) throw docError("document_encoding", name, `the encoding '${r.encoding}' is not one longdoc can decode (try gbk, gb18030, big5, shift_jis, euc-kr, utf-16le, windows-1252)`);
  return { text: decoder.decode(b.subarray(r.skip)), encoding: decoder.encoding };
}

/**
 * Whether the bytes look like binary data rather than text: NUL bytes or many C0 control
 * characters in the first 64 KiB (UTF-16 text is recognised first and is not binary).
 */
export function looksBinary(b: Uint8Array): boolean {
  const bom = sniffBom(b);
  if (bom === "utf-16le" || bom === "utf-16be" || sniffUtf16(b) || sniffUtf16Cjk(b)) return false;
  const n = Math.min(b.length, 65536);
  let controls = 0;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === 0) return true;
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x1b) controls++;
  }
  return controls > n * 0.01 + 2;
}

/** Decode, refusing binary junk as unsupported. */
export function decodeTextFile(b: Uint8Array, name: string, opts: DecodeOptions = {}): { text: string; encoding: string } {
  if (!opts.encoding && looksBinary(b)) throw docError("document_unsupported", name, "binary data, not a supported document format (PDF, DOCX, XLSX, CSV, HTML, Markdown, text, JSON)");
  return decodeDocument(b, name, opts);
}

/**
 * Plain text, Markdown and JSON: the text as is (decoded, BOM dropped, control characters removed).
 * `tidy` when one pass over the bytes showed the text has nothing for stripControls or
 * finishText's line rules to change (see tidyBytes), so those passes can be skipped.
 */
export function loadPlain(b: Uint8Array, name: string, opts: DecodeOptions = {}): { text: string; tidy: boolean; encoding: string } {
  if (tidyBytes(b)) return { ...decodeDocument(b, name, opts), tidy: true };
  const { text, encoding } = decodeTextFile(b, name, opts);
  return { text: stripControls(text), tidy: false, encoding };
}

/** Words (4 bytes) per tidyWords call (see tidyWords). */
const TIDY_RUN = 16384;

/**
 * True when the bytes, decoded as UTF-8 or Windows-1252, certainly hold nothing that stripControls
 * or finishText's line rules change: no control character (CR included; so no NUL, nothing binary
 * and no UTF-16 with any ASCII in it), no space, tab or no-break space before a line end, no run
 * of four line feeds. It may say false for a text that is tidy after all (any 0xA0 byte before a
 * line end counts); then the regex passes run as before. Most of a text is printable ASCII, which
 * is skipped four bytes at a time: about a third of one regex pass.
 */
export function tidyBytes(b: Uint8Array): boolean {
  // The words start at a 4-byte aligned address; the bytes before and after them are checked one by one.
  const head = Math.min(b.length, (4 - (b.byteOffset & 3)) & 3);
  const words = (b.length - head) >> 2;
  const tail = head + 4 * words;
  if (!tidyRange(b, 0, head) || !tidyRange(b, tail, b.length)) return false;
  const w = new Uint32Array(b.buffer, b.byteOffset + head, words);
  for (let j = 0; j < words; j += TIDY_RUN) if (!tidyWords(w, b, head, j, Math.min(words, j + TIDY_RUN))) return false;
  return true;
}

/**
 * tidyBytes over the words w[from, to) (w starts at byte `base` of b). A function called once per
 * 64 KiB rather than one long loop: V8 compiles a long loop by on-stack replacement and drops that
 * code at a full garbage collection, so the next document would be scanned by the interpreter.
 */
function tidyWords(w: Uint32Array, b: Uint8Array, base: number, from: number, to: number): boolean {
  for (let j = from; j < to; j++) {
    const x = w[j]!;
    // High bits clear in x (all bytes < 0x80), in x - 0x20 per byte (none < 0x20) and in x + 1 per byte (none 0x7F).
    if (((x | (x - 0x20202020) | (x + 0x01010101)) & 0x80808080) === 0) continue;
    if (!tidyRange(b, base + 4 * j, base + 4 * j + 4)) return false;
  }
  return true;
}

/** tidyBytes over b[from, to), byte by byte (looking back and ahead across the range's ends). */
function tidyRange(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = b[i]!;
    if ((c >= 0x20 && c !== 0x7f && c !== 0xe2) || c === 0x09) continue;
    if (c !== 0x0a && c !== 0xe2) return false;
    const before = i > 0 ? b[i - 1]! : 0;
    if (before === 0x20 || before === 0x09 || before === 0xa0) {
      // A line feed, or possibly U+2028/U+2029 (E2 80 A8/A9), after a space, tab or no-break space.
      if (c === 0x0a || (b[i + 1] === 0x80 && (b[i + 2] === 0xa8 || b[i + 2] === 0xa9))) return false;
    }
    if (c === 0x0a && i >= 3 && before === 0x0a && b[i - 2] === 0x0a && b[i - 3] === 0x0a) return false;
  }
  return true;
}
