/**
 * A sound lower bound on a text's Qwen3 token count, without tokenizing it: one pass over the
 * characters, no allocation beyond a 64 KiB class table. It lets a document that cannot fit the
 * model be refused before it is extracted in full and counted.
 *
 * Why it holds (the pre-tokenizer of engine.ts splits before BPE, and BPE never merges across
 * pieces):
 * - every number character (\p{N}) is a piece of its own, so it costs at least one token;
 * - letters (\p{L}) only share a token with other letters and punctuation, and no token of the
 *   vocabulary (added tokens included) holds more than MAX_LETTERS_PER_TOKEN letters (a test
 *   checks this against the vocabulary), so n letters cost at least n / MAX_LETTERS_PER_TOKEN
 *   tokens;
 * - NFC normalization (the tokenizer's first step) never lowers the number of letters, except
 *   Hangul conjoining jamo (up to three compose into one syllable): they are not counted;
 * - no token is longer than MAX_BYTES_PER_TOKEN bytes of UTF-8, and NFC shrinks UTF-8 at most
 *   threefold (KELVIN SIGN, 3 bytes, becomes "K"), which bounds texts of spaces and punctuation.
 *
 * For English prose the bound is about a fifth of the exact count; for Chinese about a quarter.
 */

/** The most letters (\p{L}, jamo excepted) in one Qwen3 token: ".translatesAutoresizingMaskIntoConstraints". */
export const MAX_LETTERS_PER_TOKEN = 41;
/** The most UTF-8 bytes in one Qwen3 token (a run of 128 spaces or dashes). */
export const MAX_BYTES_PER_TOKEN = 128;
/** How much NFC can shrink a text's UTF-8 bytes at most. */
const NFC_SHRINK = 3;

const LETTER = 1;
const NUMBER = 2;
let bmp: Uint8Array | undefined;

/** Class of every BMP code point: LETTER, NUMBER or 0 (built once, ~10 ms). */
function bmpClasses(): Uint8Array {
  if (bmp) return bmp;
  const t = new Uint8Array(65536);
  const letter = /\p{L}/u;
  const number = /\p{N}/u;
  for (let c = 0; c < 65536; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const s = String.fromCharCode(c);
    if (letter.test(s) && !isJamo(c)) t[c] = LETTER;
    else if (number.test(s)) t[c] = NUMBER;
  }
  bmp = t;
  return t;
}

/** Hangul conjoining jamo, which NFC composes into syllables. */
const isJamo = (c: number) => (c >= 0x1100 && c <= 0x11ff) || (c >= 0xa960 && c <= 0xa97f) || (c >= 0xd7b0 && c <= 0xd7ff);

const ASTRAL_LETTER = /\p{L}/u;
const ASTRAL_NUMBER = /\p{N}/u;

/** Letters and numbers counted as the bound needs them (see the module comment). */
export function letterAndNumberCounts(text: string): { letters: number; numbers: number; utf8Bytes: number } {
  const t = bmpClasses();
  let letters = 0;
  let numbers = 0;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      bytes++;
      // ASCII: letters and digits without the table (most text).
      if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) letters++;
      else if (c >= 0x30 && c <= 0x39) numbers++;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        const s = text.slice(i, i + 2);
        if (ASTRAL_LETTER.test(s)) letters++;
        else if (ASTRAL_NUMBER.test(s)) numbers++;
        bytes += 4;
        i++;
        continue;
      }
    }
    bytes += c < 0x800 ? 2 : 3;
    const k = t[c];
    if (k === LETTER) letters++;
    else if (k === NUMBER) numbers++;
  }
  return { letters, numbers, utf8Bytes: bytes };
}

/** At most this text's exact Qwen3 token count (countTokens), never more. */
export function minTokens(text: string): number {
  const { letters, numbers, utf8Bytes } = letterAndNumberCounts(text);
  return Math.max(Math.ceil(letters / MAX_LETTERS_PER_TOKEN) + numbers, Math.ceil(utf8Bytes / (MAX_BYTES_PER_TOKEN * NFC_SHRINK)));
}
