/**
 * Does finishing an item stay O(1) as jobs grow? Items per minute through the local fleet at a
 * small and a large job size, side by side in one run, with a quota that never binds (the
 * simulator answers at once), and the time to cancel a job whose tasks are all queued. Then the
 * two steps whose work grows with the job, at 50,000 items (the most a job holds): submit (the
 * job record and one task per item, sent in parallel batches and marked in the coordination
 * store) and the finalizer (every result read, in parts, into the manifest and the report).
 *
 *   npm run bench:scale    (BENCH_SCALE_ITEMS=100,400, BENCH_SCALE_CANCEL_ITEMS=2000, BENCH_SCALE_LARGE=50000 by default;
 *                           the run and cancel rows are small so that the whole benchmark stays under 10 minutes)
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
import { jsonText, keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { finalizeJob } from "../shared/run/finalize.ts";
import { inBatches, resultWithoutCall } from "../shared/run/manifest.ts";
import { createNotifier } from "../shared/run/notify.ts";

const list = (v: string) => v.split(",").filter(Boolean).map(Number);
const SIZES = list(process.env.BENCH_SCALE_ITEMS ?? "100,400");
const WORKERS = Number(process.env.BENCH_SCALE_WORKERS ?? 4);
/** Job sizes cancelled with all their tasks queued, beside the run sizes (default 2,000). */
const CANCEL_SIZES = list(process.env.BENCH_SCALE_CANCEL_ITEMS ?? "2000");
/** The job size submit and the finalizer are measured at (default 50,000, the most a job holds). */
const LARGE = Number(process.env.BENCH_SCALE_LARGE ?? 50_000);

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

/**
 * Submit and the finalizer at `n` items: the submit of a job of n tasks (one invocation, as the
 * deployed submit runs it), then, once every item has a result (written here, not measured), the
 * finalizer's invocation that reads them all into the manifest and the report.
 */
async function measureLarge(n: number) {
  const stack = await startLocalStack({ visibilityTimeoutS: 30 });
  try {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const coord = createCoordinator(stack.dynamo.client, stack.dynamo.table);
    const submitted = Date.now();
    const job = await submit(stack, `large-${n}`, n);
    const submitS = (Date.now() - submitted) / 1000;
    console.error(`bench:scale: submit of ${n} items took ${submitS} s; writing ${n} results`);
    const at = new Date().toISOString();
    // Set-up, not measured: plain PUTs to the emulator (no SDK, no signing), as the finalizer
    // reads results only; the workers' finish counts are not part of what it does.
    await inBatches(job.items, 64, async (item) => {
      const r = resultWithoutCall(job, item.id, { status: "succeeded", attempts: 1, error: { kind: "model_error", message: "" }, at });
      const body = jsonText({ ...r, error: null, finishReason: "stop", finishReasons: ["stop"], answer: `items/${item.id}/answer.md` });
      const put = await fetch(`${stack.endpoint}/${stack.bucket}/${keys.item(job.jobId, item.id, "result.json")}`, { method: "PUT", body, headers: { "content-type": "application/json" } });
      if (!put.ok) throw new Error(`PUT of ${item.id}'s result: HTTP ${put.status}`);
    });
    console.error(`bench:scale: ${n} results written in ${(Date.now() - submitted) / 1000 - submitS} s`);
    const finalizing = Date.now();
    const out = await finalizeJob({ s3: stack.s3, coord, log: silentLog, notifier: createNotifier({ log: silentLog, topic: { sns: stack.sns, topicArn: stack.topicArn } }) }, { jobId: job.jobId, bucket: stack.bucket });
    const finalizeS = (Date.now() - finalizing) / 1000;
    const manifest = await store.getJson<Manifest>(keys.manifest(job.jobId));
    return {
      items: n,
      submitS,
      submitItemsPerSecond: Math.round(n / submitS),
      finalizeS,
      finalizeItemsPerSecond: Math.round(n / finalizeS),
      // Each ran in one invocation; the Lambda ceiling is 900 s.
      longestInvocationS: Math.max(submitS, finalizeS),
      manifestItems: manifest?.items.length ?? 0,
      status: manifest?.status,
      event: out.event,
    };
  } finally {
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
// Cancelling is cheap to measure large: a job of CANCEL_ITEMS queued tasks (submit, then cancel), no run.
const cancelRows: Record<string, unknown>[] = [];
for (const n of CANCEL_SIZES.filter((n) => !SIZES.includes(n))) {
  const cancel = await measure(n, true);
  cancelRows.push({ items: n, submitS: cancel.submitS, cancelS: cancel.seconds, cancelItemsPerSecond: Math.round(n / cancel.seconds), cancelStatus: cancel.status });
  console.error(`bench:scale: cancel of ${n} items done`);
}
const large = LARGE > 0 ? await measureLarge(LARGE) : null;
if (large) console.error(`bench:scale: submit and finalize of ${LARGE} items done`);
const pad = (v: unknown, w: number) => String(v).padStart(w);
console.log(`${WORKERS} worker processes; a quota that never binds; the simulator answers at once`);
console.log(`${"items".padStart(8)} ${"submit s".padStart(9)} ${"run s".padStart(8)} ${"items/min".padStart(10)} ${"cancel s".padStart(9)} ${"cancelled/s".padStart(12)}`);
for (const r of rows) console.log(`${pad(r.items, 8)} ${pad(r.submitS, 9)} ${pad(r.runS, 8)} ${pad(r.runItemsPerMinute, 10)} ${pad(r.cancelS, 9)} ${pad(r.cancelItemsPerSecond, 12)}`);
const first = rows[0];
const last = rows.at(-1);
const flatness = first && last ? Number(((last.runItemsPerMinute as number) / (first.runItemsPerMinute as number)).toFixed(3)) : null;
if (first && last) console.log(`items/min at ${last.items} ÷ at ${first.items}: ${flatness} (1.0 = flat)`);
for (const r of cancelRows) console.log(`cancel of ${r.items} queued items: submit ${r.submitS} s, cancel ${r.cancelS} s (${r.cancelItemsPerSecond}/s), ${r.cancelStatus}`);
if (large) {
  console.log(`\n${"large job".padEnd(10)} ${"items".padStart(7)} ${"seconds".padStart(8)} ${"items/s".padStart(8)}   (target ≥ 200/s; one invocation each, Lambda allows 900 s)`);
  console.log(`${"submit".padEnd(10)} ${pad(large.items, 7)} ${pad(large.submitS, 8)} ${pad(large.submitItemsPerSecond, 8)}`);
  console.log(`${"finalize".padEnd(10)} ${pad(large.items, 7)} ${pad(large.finalizeS, 8)} ${pad(large.finalizeItemsPerSecond, 8)}   manifest: ${large.manifestItems} items, ${large.status}; event ${large.event}`);
  console.log(`longest single invocation: ${large.longestInvocationS} s`);
}
console.log(
  JSON.stringify({
    bench: "scale",
    workers: WORKERS,
    rows,
    cancelRows,
    flatness,
    largeItems: large?.items ?? null,
    submitItemsPerSecond: large?.submitItemsPerSecond ?? null,
    finalizeItemsPerSecond: large?.finalizeItemsPerSecond ?? null,
    submitS: large?.submitS ?? null,
    finalizeS: large?.finalizeS ?? null,
    longestInvocationS: large?.longestInvocationS ?? null,
  }),
);
