/**
 * A sound lower bound on a text's Qwen3 token count, without tokenizing it: one pass over the
 * characters, no allocation beyond a 64 KiB class table. It lets a document that cannot fit the
 * model be refused before it is extracted in full and counted.
 *
 * Why it holds (the tokenizer splits added tokens out, NFC-normalizes, cuts the text into pieces
 * with its pre-tokenizer regex, and BPE never merges across pieces):
 * - every number character (\p{N}) is a piece of its own: at least one token each;
 * - a piece holds letters of one word at most, a word being a run of letters joined by combining
 *   marks, `_` and `|` (joined so that NFC, which composes "e" + U+0301 into "é", cannot merge
 *   two of our words into one, and so that an added token such as `<|object_ref_start|>` is one
 *   word); no token of the vocabulary holds more than MAX_LETTERS_PER_TOKEN letters (a test
 *   checks this against it), so a word of n letters costs at least ceil(n / 41) tokens;
 * - NFC never lowers the number of letters, except Hangul conjoining jamo (up to three compose
 *   into one syllable): they join words but are not counted;
 * - no token is longer than MAX_BYTES_PER_TOKEN bytes of UTF-8, and NFC shrinks UTF-8 at most
 *   threefold (KELVIN SIGN, 3 bytes, becomes "K"), which bounds texts of spaces and punctuation.
 * Texts fed in parts (TokenFloor.add) are taken as one text: a word cut between two parts is
 * counted as one, which only lowers the bound.
 *
 * For English prose the bound is 0.8-0.9 of the exact count; for Chinese about a sixth.
 */

/** The most letters (\p{L}, jamo excepted) in one Qwen3 token: ".translatesAutoresizingMaskIntoConstraints". */
export const MAX_LETTERS_PER_TOKEN = 41;
/** The most UTF-8 bytes in one Qwen3 token (a run of 128 spaces or dashes). */
export const MAX_BYTES_PER_TOKEN = 128;
/** How much NFC can shrink a text's UTF-8 bytes at most. */
const NFC_SHRINK = 3;

const OTHER = 0;
const LETTER = 1;
const NUMBER = 2;
/** Continues a word without counting: combining marks, `_`, `|`, Hangul conjoining jamo. */
const JOIN = 3;
let bmp: Uint8Array | undefined;

const UNKNOWN = 255;

/** Class of each BMP code point, filled in as code points are first seen. */
function bmpClasses(): Uint8Array {
  bmp ??= new Uint8Array(65536).fill(UNKNOWN);
  return bmp;
}

const L = /\p{L}/u;
const N = /\p{N}/u;
const M = /\p{M}/u;
/** Hangul conjoining jamo, which NFC composes into syllables. */
const isJamo = (c: number) => (c >= 0x1100 && c <= 0x11ff) || (c >= 0xa960 && c <= 0xa97f) || (c >= 0xd7b0 && c <= 0xd7ff);

function classOf(s: string, c: number): number {
  if (c === 0x5f || c === 0x7c || isJamo(c) || M.test(s)) return JOIN;
  if (L.test(s)) return LETTER;
  if (N.test(s)) return NUMBER;
  return OTHER;
}

/** The bound over a text given in parts (see the module comment). */
export class TokenFloor {
  private words = 0;
  private letters = 0;
  private numbers = 0;
  private bytes = 0;

  add(text: string): this {
    const t = bmpClasses();
    let { words, letters, numbers, bytes } = this;
    for (let i = 0; i < text.length; i++) {
      let c = text.charCodeAt(i);
      let k: number;
      if (c < 0x80) {
        bytes++;
        // ASCII without the table (most text).
        k = (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a ? LETTER : c >= 0x30 && c <= 0x39 ? NUMBER : c === 0x5f || c === 0x7c ? JOIN : OTHER;
      } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = ((c - 0xd800) << 10) + (text.charCodeAt(i + 1) - 0xdc00) + 0x10000;
        k = classOf(text.slice(i, i + 2), c);
        bytes += 4;
        i++;
      } else {
        bytes += c < 0x800 ? 2 : 3;
        k = t[c]!;
        if (k === UNKNOWN) k = t[c] = classOf(String.fromCharCode(c), c);
      }
      if (k === LETTER) letters++;
      else if (k !== JOIN && letters > 0) {
        words += Math.ceil(letters / MAX_LETTERS_PER_TOKEN);
        letters = 0;
      }
      if (k === NUMBER) numbers++;
    }
    Object.assign(this, { words, letters, numbers, bytes });
    return this;
  }

  /** At most the exact token count of everything added, never more. */
  get value(): number {
    const byWords = this.words + Math.ceil(this.letters / MAX_LETTERS_PER_TOKEN) + this.numbers;
    return Math.max(byWords, Math.ceil(this.bytes / (MAX_BYTES_PER_TOKEN * NFC_SHRINK)));
  }
}

/** At most this text's exact Qwen3 token count (countTokens), never more. */
export function minTokens(text: string): number {
  return new TokenFloor().add(text).value;
}

/** Letters (jamo excepted) in a text: what MAX_LETTERS_PER_TOKEN counts. */
export function countLetters(text: string): number {
  let n = 0;
  for (const ch of text) if (L.test(ch) && !isJamo(ch.codePointAt(0)!)) n++;
  return n;
}
