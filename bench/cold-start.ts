/**
 * The worker Lambda's cold start: the bundle built as SST ships it (esbuild, ESM, Node 24, the
 * packages infra installs kept external, minified, with code splitting as infra/queue.ts asks;
 * see test/bundle.test.ts) and, beside it, the same as one minified file and unminified, each
 * imported in fresh Node processes, with a bare Node process as the floor.
 *
 * Per process: `import` = the time the worker bundle's import takes; `init` = the first
 * invocation's one-off work (settings, clients, model client: the handler is called with an
 * empty batch); `ready` = from the process's start to the end of init. Medians of N processes,
 * run one after another. Target: import of the bundle as it ships ≤ 500 ms.
 *
 *   npm run bench:cold-start        (BENCH_COLD_N=15 processes per variant by default)
 */
import { execFile } from "node:child_process";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { build } from "esbuild";
import { ESM_REQUIRE_BANNER, INSTALLED_PACKAGES } from "../shared/bundle.ts";
import { median } from "./median.ts";

const N = Number(process.env.BENCH_COLD_N ?? 15);
const TARGET_MS = 500;
// Inside node_modules so the bundle's external packages (pdfjs-dist) resolve as in a Lambda's /var/task.
const outRoot = path.resolve("node_modules/.cache/longdoc-cold-start");

/** The bundle's bytes by package (or by file of ours), largest first: where the import time goes. */
function byPackage(inputs: Record<string, { bytesInOutput: number }>): [string, number][] {
  const out = new Map<string, number>();
  for (const [file, v] of Object.entries(inputs)) {
    const tail = file.split("node_modules/").pop()!;
    const name = file.includes("node_modules/") ? tail.split("/").slice(0, tail.startsWith("@") ? 2 : 1).join("/") : file;
    out.set(name, (out.get(name) ?? 0) + v.bytesInOutput);
  }
  return [...out].sort((a, b) => b[1] - a[1]);
}

async function bundle(minify: boolean, splitting = false): Promise<{ file: string; bytes: number; gzipBytes: number; largest: [string, number][] }> {
  const outdir = path.join(outRoot, splitting ? "split" : minify ? "min" : "plain");
  await mkdir(outdir, { recursive: true });
  const result = await build({
    metafile: true,
    entryPoints: ["functions/worker.ts"],
    bundle: true,
    minify,
    splitting,
    platform: "node",
    format: "esm",
    target: "node24",
    outdir,
    outExtension: { ".js": ".mjs" },
    external: INSTALLED_PACKAGES,
    logLevel: "silent",
    banner: { js: ESM_REQUIRE_BANNER },
  });
  const file = path.join(outdir, "worker.mjs");
  // With splitting, the entry's own size is what a cold start parses first; the chunks load on first use.
  return { file, bytes: (await stat(file)).size, gzipBytes: gzipSync(readFileSync(file)).length, largest: byPackage(Object.values(result.metafile.outputs)[0]!.inputs).slice(0, 8) };
}

/** What a fresh process runs: import the bundle, then one empty invocation to build its deps. */
const probe = (file: string | null) => `
  const t0 = performance.now();
  const mod = ${file ? `await import(${JSON.stringify(file)})` : "null"};
  const t1 = performance.now();
  if (mod) await mod.handler({ Records: [] }, { getRemainingTimeInMillis: () => 900000 });
  const t2 = performance.now();
  console.log(JSON.stringify({ importMs: t1 - t0, initMs: t2 - t1, readyMs: t2 }));
`;

// The environment a deployed worker has (SST's linked resources), with placeholder values: nothing is called.
const env = {
  PATH: process.env.PATH,
  SST_RESOURCES_JSON: JSON.stringify({
    DashscopeApiKey: { type: "sst.sst.Secret", value: "sk-cold-start" },
    WebhookSecret: { type: "sst.sst.Secret", value: "cold-start-webhook-secret-0123456789" },
    Runs: { type: "sst.aws.Bucket", name: "cold-start" },
    Coord: { type: "sst.aws.Dynamo", name: "cold-start" },
  }),
  LONGDOC_TASKS_URL: "http://127.0.0.1:9/000000000000/cold-start",
  LONGDOC_EVENTS_TOPIC: "arn:aws:sns:us-east-1:000000000000:cold-start",
  QWEN_BASE_URL: "http://127.0.0.1:9/compatible-mode/v1",
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "local",
  AWS_SECRET_ACCESS_KEY: "local",
};

async function sample(file: string | null): Promise<{ importMs: number; initMs: number; readyMs: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", probe(file)], { env, timeout: 60_000 });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

const variants = [
  { name: "bare node", build: null as Awaited<ReturnType<typeof bundle>> | null },
  { name: "minified", build: await bundle(true) },
  { name: "unminified", build: await bundle(false) },
  // What ships: esbuild's code splitting, so the format parsers behind dynamic import() (PDF,
  // DOCX, XLSX, CSV) are chunks loaded only when a task needs them.
  { name: "min+split", build: await bundle(true, true) },
];
const samples = new Map<string, { importMs: number; initMs: number; readyMs: number }[]>(variants.map((v) => [v.name, []]));
// Interleaved, so a busy moment on the machine falls on every variant alike.
for (let i = 0; i < N; i++) for (const v of variants) samples.get(v.name)!.push(await sample(v.build?.file ?? null));
await rm(outRoot, { recursive: true, force: true });

const rows = variants.map((v) => {
  const s = samples.get(v.name)!;
  return {
    variant: v.name,
    bytes: v.build?.bytes ?? 0,
    gzipBytes: v.build?.gzipBytes ?? 0,
    importMs: median(s.map((x) => x.importMs)),
    initMs: median(s.map((x) => x.initMs)),
    readyMs: median(s.map((x) => x.readyMs)),
    maxImportMs: Math.max(...s.map((x) => x.importMs)),
  };
});
const f = (x: number) => x.toFixed(1);
const kib = (b: number) => (b / 1024).toFixed(0);
console.log(`worker bundle cold start: medians of ${N} fresh Node processes each (interleaved); min+split ships (its KiB is the entry file)`);
console.log(`${"variant".padEnd(11)} ${"KiB".padStart(7)} ${"gzip KiB".padStart(9)} ${"import ms".padStart(10)} ${"max".padStart(7)} ${"init ms".padStart(8)} ${"ready ms".padStart(9)}`);
for (const r of rows) console.log(`${r.variant.padEnd(11)} ${kib(r.bytes).padStart(7)} ${kib(r.gzipBytes).padStart(9)} ${f(r.importMs).padStart(10)} ${f(r.maxImportMs).padStart(7)} ${f(r.initMs).padStart(8)} ${f(r.readyMs).padStart(9)}`);
const [bare, min, plain, split] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
const largest = variants[1]!.build!.largest.map(([name, b]) => ({ name, kib: Math.round(b / 1024) }));
console.log(`largest parts of the minified bundle: ${largest.map((l) => `${l.name} ${l.kib} KiB`).join(", ")}`);
const met = split.importMs <= TARGET_MS;
console.log(
  `as it ships (min+split) import ${f(split.importMs)} ms (target ≤ ${TARGET_MS} ms): ${met ? "met" : "NOT met"}; min+split ÷ one minified file: ${(split.importMs / min.importMs).toFixed(2)}x (entry ${kib(split.bytes)} KiB); unminified ÷ minified import: ${(plain.importMs / min.importMs).toFixed(2)}x; ready ÷ bare Node start: ${(split.readyMs / bare.readyMs).toFixed(2)}x`,
);
console.log(JSON.stringify({ bench: "cold-start", n: N, rows, largestKiB: largest, targetMs: TARGET_MS, targetMet: met }));
