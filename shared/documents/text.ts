/**
 * Byte → string decoding for the text formats, the binary-junk check, and the plain
 * text / Markdown / JSON loaders (which pass the text through as is).
 *
 * Decoding: a BOM decides (UTF-8, UTF-16 LE/BE; the BOM is dropped). Without one, UTF-8 when
 * the bytes are valid UTF-8, else Windows-1252 (the usual encoding of old "ANSI" text files).
 * Callers may pass a declared charset (HTML <meta charset>), which wins over the guess.
 */
import { docError, stripControls } from "./util.ts";

export type Bom = "utf-8" | "utf-16le" | "utf-16be";

export function sniffBom(b: Uint8Array): Bom | undefined {
  if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return "utf-8";
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0xfe) return "utf-16le";
  if (b.length >= 2 && b[0] === 0xfe && b[1] === 0xff) return "utf-16be";
  return undefined;
}

/** UTF-16 without a BOM: mostly-ASCII text has a zero in every other byte. */
function sniffUtf16(b: Uint8Array): Bom | undefined {
  const n = Math.min(b.length, 4096) & ~1;
  if (n < 8) return undefined;
  let evenZero = 0;
  let oddZero = 0;
  for (let i = 0; i < n; i += 2) {
    if (b[i] === 0) evenZero++;
    if (b[i + 1] === 0) oddZero++;
  }
  const pairs = n / 2;
  if (oddZero > pairs * 0.6 && evenZero < pairs * 0.05) return "utf-16le";
  if (evenZero > pairs * 0.6 && oddZero < pairs * 0.05) return "utf-16be";
  return undefined;
}

/**
 * Whether the bytes look like binary data rather than text: NUL bytes or many C0 control
 * characters in the first 64 KiB (UTF-16 text is recognised first and is not binary).
 */
export function looksBinary(b: Uint8Array): boolean {
  const bom = sniffBom(b);
  if (bom === "utf-16le" || bom === "utf-16be" || sniffUtf16(b)) return false;
  const n = Math.min(b.length, 65536);
  let controls = 0;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === 0) return true;
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x1b) controls++;
  }
  return controls > n * 0.01 + 2;
}

function tryDecoder(label: string): InstanceType<typeof TextDecoder> | undefined {
  try {
    return new TextDecoder(label);
  } catch {
    return undefined;
  }
}

/** Decode bytes to a string (see the module comment). The BOM is never part of the result. */
export function decodeText(b: Uint8Array, declared?: string): string {
  const bom = sniffBom(b);
  if (bom) return new TextDecoder(bom).decode(b.subarray(bom === "utf-8" ? 3 : 2));
  const utf16 = sniffUtf16(b);
  if (utf16) return new TextDecoder(utf16).decode(b);
  if (declared) {
    const d = tryDecoder(declared.trim().toLowerCase());
    // A page that says utf-16 but has no BOM and no zero bytes is really ASCII-compatible.
    if (d && !d.encoding.startsWith("utf-16")) return d.decode(b);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return new TextDecoder("windows-1252").decode(b);
  }
}

/** Decode, refusing binary junk as unsupported. */
export function decodeTextFile(b: Uint8Array, name: string, declared?: string): string {
  if (looksBinary(b)) throw docError("document_unsupported", name, "binary data, not a supported document format (PDF, DOCX, XLSX, CSV, HTML, Markdown, text, JSON)");
  return decodeText(b, declared);
}

/**
 * Plain text, Markdown and JSON: the text as is (decoded, BOM dropped, control characters removed).
 * `tidy` when one pass over the bytes showed the text has nothing for stripControls or
 * finishText's line rules to change (see tidyBytes), so those passes can be skipped.
 */
export function loadPlain(b: Uint8Array, name: string): { text: string; tidy: boolean } {
  if (tidyBytes(b)) return { text: decodeText(b), tidy: true };
  return { text: stripControls(decodeTextFile(b, name)), tidy: false };
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
