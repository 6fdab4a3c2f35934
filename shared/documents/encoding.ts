/**
 * Which encoding a text file (plain text, Markdown, CSV, JSON, HTML without a charset) is in,
 * when it is not UTF-8.
 *
 * In order:
 * 1. the encoding the job file states for the document (`encoding: gbk`) decides;
 * 2. a BOM decides (UTF-8, UTF-16 LE/BE);
 * 3. UTF-16 without a BOM, mostly-ASCII text: every other byte is zero;
 * 4. a charset the HTML declares;
 * 5. valid UTF-8 is UTF-8 (ASCII included);
 * 6. otherwise the detector ranks the legacy encodings: chardet (ICU's detector: byte-sequence
 *    validity plus the frequencies of each language's common characters), run on the first
 *    256 KiB. Candidates are kept only if TextDecoder decodes that sample without an error.
 *    The best is used when its confidence is at least MIN_CONFIDENCE and it leads every
 *    candidate that would give a different text by MIN_LEAD; otherwise the file fails its item
 *    (document_encoding) with the candidates named and the job-file way to state the encoding,
 *    rather than be read as mojibake.
 * 7. before that error: UTF-16 without a BOM of CJK text with little or no ASCII (too few zero
 *    bytes for step 3): the bytes are not UTF-8, one byte order reads as text (98% of code
 *    units CJK, kana, Latin, punctuation, and Hangul when there is a zero byte, i.e. a space)
 *    and the other does not (under 90%).
 *
 * chardet names map to TextDecoder's (WHATWG) encodings: GB18030 (a superset of GBK and
 * GB2312), Big5, Shift_JIS, EUC-JP, EUC-KR, windows-125x, ISO-8859-x (ISO-8859-1 is read as
 * windows-1252, as browsers do), KOI8-R.
 */
import { analyse } from "chardet";
import { docError } from "./util.ts";

export const MIN_CONFIDENCE = 50;
export const MIN_LEAD = 20;
const SAMPLE_BYTES = 256 * 1024;

export type Bom = "utf-8" | "utf-16le" | "utf-16be";

export function sniffBom(b: Uint8Array): Bom | undefined {
  if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return "utf-8";
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0xfe) return "utf-16le";
  if (b.length >= 2 && b[0] === 0xfe && b[1] === 0xff) return "utf-16be";
  return undefined;
}

/** UTF-16 without a BOM, mostly-ASCII text: a zero in every other byte (step 3). */
export function sniffUtf16(b: Uint8Array): "utf-16le" | "utf-16be" | undefined {
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
 * UTF-16 without a BOM of text with little or no ASCII (CJK): one byte order reads as text and
 * the other does not (step 7). Only asked once the bytes are neither UTF-8
 * nor a legacy encoding the detector is sure of: Shift-JIS kanji read two bytes at a time look
 * like CJK code units too.
 */
export function sniffUtf16Cjk(b: Uint8Array): "utf-16le" | "utf-16be" | undefined {
  const n = Math.min(b.length, 4096) & ~1;
  if (n < 32) return undefined;
  const sample = b.subarray(0, n);
  // ASCII text read two bytes at a time looks like CJK: only bytes that are not UTF-8 qualify.
  if (decodesCleanly(sample, "utf-8")) return undefined;
  // Korean is written with spaces (zero bytes in UTF-16); without any, Hangul is not taken as
  // a sign of UTF-16, since GBK's common hanzi read two bytes at a time fall in its block.
  const hangul = sample.includes(0);
  const le = plausibleUtf16(sample, true, hangul);
  const be = plausibleUtf16(sample, false, hangul);
  if (le >= 0.98 && be < 0.9 && decodesCleanly(sample, "utf-16le")) return "utf-16le";
  if (be >= 0.98 && le < 0.9 && decodesCleanly(sample, "utf-16be")) return "utf-16be";
  return undefined;
}

function decodesCleanly(b: Uint8Array, encoding: string): boolean {
  try {
    new TextDecoder(encoding, { fatal: true }).decode(b, { stream: true });
    return true;
  } catch {
    return false;
  }
}

/** The share of code units that are ordinary CJK, Western (and with `hangul`, Korean) text. */
function plausibleUtf16(b: Uint8Array, littleEndian: boolean, hangul: boolean): number {
  let good = 0;
  for (let i = 0; i + 1 < b.length; i += 2) {
    const u = littleEndian ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!;
    if (
      (u >= 0x20 && u < 0x7f) ||
      u === 0x0a ||
      u === 0x0d ||
      u === 0x09 ||
      (u >= 0xa0 && u < 0x250) ||
      (u >= 0x2000 && u < 0x2070) ||
      (u >= 0x3000 && u < 0x3100) ||
      (u >= 0x3400 && u < 0x4dc0) ||
      (u >= 0x4e00 && u < 0xa000) ||
      (hangul && u >= 0xac00 && u < 0xd7a4) ||
      (u >= 0xff00 && u < 0xfff0)
    ) {
      good++;
    }
  }
  return good / (b.length / 2);
}

/** chardet's name → the TextDecoder encoding to decode with (undefined: not one longdoc picks by itself). */
function decoderName(name: string): string | undefined {
  const n = name.toLowerCase();
  if (n.startsWith("utf") || n.startsWith("iso-2022")) return undefined; // handled before, or 7-bit
  try {
    return new TextDecoder(n).encoding;
  } catch {
    return undefined;
  }
}

export interface Candidate {
  encoding: string;
  confidence: number;
}

/** The legacy-encoding candidates for bytes that are not UTF-8, best first (step 6). */
export function rankLegacyEncodings(b: Uint8Array): Candidate[] {
  const sample = b.subarray(0, SAMPLE_BYTES);
  const byName = new Map<string, number>();
  for (const m of analyse(sample)) {
    const enc = decoderName(m.name);
    if (enc && (byName.get(enc) ?? -1) < m.confidence) byName.set(enc, m.confidence);
  }
  const out: Candidate[] = [];
  for (const [encoding, confidence] of byName) {
    try {
      // stream: a multi-byte character cut at the sample's end is not an error.
      new TextDecoder(encoding, { fatal: true }).decode(sample, { stream: sample.length < b.length });
      out.push({ encoding, confidence });
    } catch {
      /* not this encoding */
    }
  }
  return out.sort((x, y) => y.confidence - x.confidence);
}

/** The encoding to read legacy bytes with, or the candidates when it cannot be told (step 6). */
export function chooseLegacyEncoding(b: Uint8Array): { encoding: string } | { candidates: Candidate[] } {
  const ranked = rankLegacyEncodings(b);
  const best = ranked[0];
  if (!best || best.confidence < MIN_CONFIDENCE) return { candidates: ranked };
  const sample = b.subarray(0, SAMPLE_BYTES);
  const text = (encoding: string) => new TextDecoder(encoding).decode(sample);
  const bestText = text(best.encoding);
  const rival = ranked.slice(1).find((c) => best.confidence - c.confidence < MIN_LEAD && text(c.encoding) !== bestText);
  return rival ? { candidates: ranked } : { encoding: best.encoding };
}

/** The document_encoding error: the candidates, and how to state the encoding in the job file. */
export function undecidableEncoding(name: string, candidates: Candidate[]) {
  const shown = candidates.slice(0, 4);
  const listed = shown.length ? `candidates: ${shown.map((c) => `${c.encoding} (${c.confidence}%)`).join(", ")}` : "no encoding longdoc knows decodes it cleanly";
  const example = shown[0]?.encoding ?? "gbk";
  return docError(
    "document_encoding",
    name,
    `not UTF-8, and its encoding cannot be told with confidence (${listed}); state it in the job file: documents: [{ path: ${name}, encoding: ${example} }]`,
  );
}

/** Whether TextDecoder knows this encoding label (gbk, shift_jis, utf-16le...). */
export function isKnownEncoding(label: string): boolean {
  try {
    new TextDecoder(label);
    return true;
  } catch {
    return false;
  }
}
