/**
 * Does finishing an item stay O(1) as jobs grow? Items per minute through the local fleet at a
 * small and a large job size, side by side in one run, with a quota that never binds (the
 * simulator answers at once), and the time to cancel a job whose tasks are all queued.
 *
 *   npm run bench:scale                 (BENCH_SCALE_ITEMS=100,2000 by default)
 *
 * The last stdout line is one JSON object with the figures.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../shared/job/record.ts";
import { startFleet } from "../shared/local/fleet.ts";
import { cancelLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";

const SIZES = (process.env.BENCH_SCALE_ITEMS ?? "100,2000").split(",").map(Number);
const WORKERS = Number(process.env.BENCH_SCALE_WORKERS ?? 4);

const dir = await mkdtemp(path.join(tmpdir(), "longdoc-bench-scale-"));
// A quota far above what the run can use: the fleet's own work per item is what is measured.
const catalogPath = path.join(dir, "catalog.json");
await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": { rpm: 1_000_000, tpm: 10_000_000_000 } } }));
const catalog = loadCatalog(catalogPath);

async function submit(stack: LocalStack, name: string, n: number): Promise<JobRecord> {
  const store = new ObjectStore(stack.s3, stack.bucket);
  const key = `inputs/${name}/note.md`;
  await store.put(key, "# Note\n\nRevenue rose.\n", "text/markdown");
  // n items over one small object: the per-item work is the fleet's, not the upload's.
  const documents = Array.from({ length: n }, (_, i) => ({ source: `note-${i}.md`, uri: s3Uri(stack.bucket, key) }));
  const spec = parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: false }\nmaxOutputTokens: 64\noutput: { format: text, onTruncated: keep }\n`, `${name}.yaml`);
  return submitJob(
    { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives, coord: createCoordinator(stack.dynamo.client, stack.dynamo.table) },
    { spec, model: getModel(catalog, "qwen3-max"), documents, outputSchema: null },
  );
}

async function finalManifest(stack: LocalStack, job: JobRecord): Promise<Manifest> {
  const store = new ObjectStore(stack.s3, stack.bucket);
  for (;;) {
    const m = await store.getJson<Manifest>(keys.manifest(job.jobId));
    if (m && m.status !== "running") return m;
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function measure(n: number, cancel: boolean): Promise<{ items: number; submitS: number; seconds: number; itemsPerMinute: number; status: string }> {
  const stack = await startLocalStack({ visibilityTimeoutS: 30 });
  const sim = await startSimulator({ port: 0, decodeTokensPerSecond: 0 });
  try {
    const submitted = Date.now();
    const job = await submit(stack, `${cancel ? "cancel" : "run"}-${n}`, n);
    const submitS = (Date.now() - submitted) / 1000;
    const settings = loadSettings({ DASHSCOPE_API_KEY: "sk-bench", QWEN_BASE_URL: sim.baseURL, LONGDOC_LOG: "error", LONGDOC_CATALOG: catalogPath });
    const started = Date.now();
    if (cancel) {
      // What `longdoc cancel` does on a local state whose tasks are all queued.
      const out = await cancelLocalJob({ jobId: job.jobId, stack, outDir: path.join(dir, "out"), workers: WORKERS, settings, log: silentLog });
      const seconds = (Date.now() - started) / 1000;
      return { items: n, submitS, seconds, itemsPerMinute: Math.round((n / seconds) * 60), status: out.manifest.status };
    }
    const fleet = await startFleet({ stack, workers: WORKERS, settings, endpoint: { apiKey: "sk-bench", baseURL: sim.baseURL }, log: silentLog });
    try {
      const m = await finalManifest(stack, job);
      const seconds = (Date.now() - started) / 1000;
      return { items: n, submitS, seconds, itemsPerMinute: Math.round((n / seconds) * 60), status: m.status };
    } finally {
      await fleet.stop();
    }
  } finally {
    await sim.stop();
    await stack.stop();
  }
}

const rows: Record<string, unknown>[] = [];
for (const n of SIZES) {
  const run = await measure(n, false);
  const cancel = await measure(n, true);
  rows.push({ items: n, submitS: run.submitS, runS: run.seconds, runItemsPerMinute: run.itemsPerMinute, runStatus: run.status, cancelS: cancel.seconds, cancelItemsPerSecond: Math.round(n / cancel.seconds), cancelStatus: cancel.status });
  console.error(`bench:scale: ${n} items done`);
}
const pad = (v: unknown, w: number) => String(v).padStart(w);
console.log(`${WORKERS} worker processes; a quota that never binds; the simulator answers at once`);
console.log(`${"items".padStart(8)} ${"submit s".padStart(9)} ${"run s".padStart(8)} ${"items/min".padStart(10)} ${"cancel s".padStart(9)} ${"cancelled/s".padStart(12)}`);
for (const r of rows) console.log(`${pad(r.items, 8)} ${pad(r.submitS, 9)} ${pad(r.runS, 8)} ${pad(r.runItemsPerMinute, 10)} ${pad(r.cancelS, 9)} ${pad(r.cancelItemsPerSecond, 12)}`);
const first = rows[0]!;
const last = rows.at(-1)!;
const flatness = Number(((last.runItemsPerMinute as number) / (first.runItemsPerMinute as number)).toFixed(3));
console.log(`items/min at ${last.items} ÷ at ${first.items}: ${flatness} (1.0 = flat)`);
console.log(JSON.stringify({ bench: "scale", workers: WORKERS, rows, flatness }));
