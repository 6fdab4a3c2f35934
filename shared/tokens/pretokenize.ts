/**
 * Hand-written equivalent of the Qwen3 pre-tokenizer regex, as JavaScript runs it (`gu` flags):
 *
 *   '(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])      1 contraction
 *   | [^\r\n\p{L}\p{N}]?\p{L}+                             2 letters, with one optional leader
 *   | \p{N}                                                3 one digit
 *   | ' '?[^\s\p{L}\p{N}]+[\r\n]*                          4 symbols (+ trailing newlines)
 *   | \s*[\r\n]+                                           5 whitespace up to the last newline
 *   | \s+(?!\S)                                           6 whitespace but the last before text
 *   | \s+                                                 7 whitespace
 *
 * `pieceEnd(u, i, len)` returns where the match starting at i ends, reading the string's UTF-16
 * code units from `u` (the counter keeps them in a Uint16Array, which V8 reads faster than
 * `charCodeAt`); matches tile the string (every code point is L, N, whitespace or "other"), so
 * walking pieceEnd from 0 yields exactly the pieces `s.match(regex)` returns, without a RegExp,
 * match arrays or substrings.
 * test/tokens.test.ts checks this against the regex on fuzzed strings.
 */
import { endianness } from "node:os";

/** Code-point classes. */
const L = 1; // \p{L}
const N = 2; // \p{N}
const S = 3; // \s other than \r \n
const R = 4; // \r or \n
const O = 5; // anything else (punctuation, symbols, marks, controls, lone surrogates, …)

const RE_L = /^\p{L}$/u;
const RE_N = /^\p{N}$/u;
const RE_S = /^\s$/u;

function classify(ch: string): number {
  if (RE_L.test(ch)) return L;
  if (RE_N.test(ch)) return N;
  if (ch === "\r" || ch === "\n") return R;
  if (RE_S.test(ch)) return S;
  return O;
}

/** Class of each BMP code unit, 0 = not yet computed (filled lazily; ASCII up front). */
const bmp = new Uint8Array(65536);
for (let c = 0; c < 128; c++) bmp[c] = classify(String.fromCharCode(c));
/** Class of astral code points seen so far. */
const astral = new Map<number, number>();

/** Width in code units of the code point classified by the last `classAt` call. */
let width = 1;

const BIG_ENDIAN = endianness() === "BE";

/** Writes the UTF-16 code units of s into u[0, s.length) (u must have room) and returns u. */
export function writeUnits(s: string, u: Uint16Array): Uint16Array {
  // "utf16le" writes each code unit as it is, lone surrogates too; a big-endian host swaps them into its order.
  const bytes = Buffer.from(u.buffer, u.byteOffset, 2 * s.length);
  bytes.write(s, "utf16le");
  if (BIG_ENDIAN) bytes.swap16();
  return u;
}

/** Class of the code point at i (i < len); sets `width`. */
function classAt(u: Uint16Array, i: number, len: number): number {
  const c = u[i]!;
  if (c < 0xd800 || c > 0xdfff) {
    width = 1;
    const k = bmp[c]!;
    if (k !== 0) return k;
    return (bmp[c] = classify(String.fromCharCode(c)));
  }
  if (c <= 0xdbff && i + 1 < len) {
    const d = u[i + 1]!;
    if (d >= 0xdc00 && d <= 0xdfff) {
      width = 2;
      const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
      let k = astral.get(cp);
      if (k === undefined) astral.set(cp, (k = classify(String.fromCodePoint(cp))));
      return k;
    }
  }
  width = 1; // lone surrogate
  return O;
}

/** End of the run of class `k` code points starting at i. */
function runEnd(u: Uint16Array, i: number, len: number, k: number): number {
  while (i < len) {
    const c = u[i]!;
    if (c < 128) {
      if (bmp[c] !== k) return i;
      i++;
    } else {
      if (classAt(u, i, len) !== k) return i;
      i += width;
    }
  }
  return i;
}

/** Lower-cased ASCII letter at i, or 0. */
function lowerAt(u: Uint16Array, i: number, len: number): number {
  if (i >= len) return 0;
  const c = u[i]! | 0x20;
  return c >= 0x61 && c <= 0x7a ? c : 0;
}

/** End of the pre-token starting at i (0 <= i < len): `u` holds the string's code units (at least len of them). */
export function pieceEnd(u: Uint16Array, i: number, len: number): number {
  const c = u[i]!;
  // 1: contractions
  if (c === 0x27) {
    const a = lowerAt(u, i + 1, len);
    if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return i + 2; // 's 't 'm 'd
    const b = lowerAt(u, i + 2, len);
    if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) return i + 3; // 're 've 'll
  }
  const k = classAt(u, i, len);
  const w = width;
  // 2: letters (a letter run, or one non-newline non-letter non-digit leader and a letter run)
  if (k === L) return runEnd(u, i + w, len, L);
  if (k === N) return i + w; // 3 (2 cannot start at a digit)
  if (k !== R && i + w < len && classAt(u, i + w, len) === L) return runEnd(u, i + w + width, len, L);
  // 4: symbols, optionally after one space, then newlines
  if (k === O || (c === 0x20 && i + 1 < len && classAt(u, i + 1, len) === O)) {
    let j = runEnd(u, k === O ? i + w : i + 1, len, O);
    while (j < len) {
      const d = u[j]!;
      if (d !== 0x0a && d !== 0x0d) break;
      j++;
    }
    return j;
  }
  // whitespace run [i, j) (whitespace is all BMP, one unit each)
  let j = i + 1;
  let lastNl = c === 0x0a || c === 0x0d ? i : -1;
  while (j < len) {
    const d = u[j]!;
    let kd: number;
    if (d < 128) kd = bmp[d]!;
    else kd = classAt(u, j, len);
    if (kd === R) lastNl = j;
    else if (kd !== S) break;
    j++;
  }
  if (lastNl >= 0) return lastNl + 1; // 5
  if (j === len) return j; // 6, at the end
  if (j - i >= 2) return j - 1; // 6, leave the last space to lead the next piece
  return j; // 7
}

/** The pre-tokens of s (for tests and ids; counting walks pieceEnd directly). */
export function splitPieces(s: string): string[] {
  const out: string[] = [];
  const len = s.length;
  const u = writeUnits(s, new Uint16Array(len));
  for (let i = 0; i < len; ) {
    const j = pieceEnd(u, i, len);
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}
