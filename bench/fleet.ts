/**
 * The fleet under one account quota, side by side in one run:
 *
 * - longdoc: worker processes pace every call through the coordination table (shared/run/coord.ts)
 * - baseline ("today's approach"): each process keeps a fixed share of the quota (RPM/N, TPM/N)
 *   in its own memory (shared/local/fixed-share-quota.ts); claims, ledger and finish counter
 *   still go to the table
 *
 * Each arm gets a fresh emulator stack and ONE simulator enforcing the quota (RPM, TPM and their
 * per-second shares; 429 when over), and runs two jobs at once on the same fleet: a bulk job of
 * mixed-size documents (~1K to ~200K tokens) and a small job submitted part-way through. The
 * quota is scaled down (a catalog override, so workers and simulator agree) so that each arm is
 * quota-bound and takes about a minute. Everything stays on loopback.
 *
 *   npm run bench:fleet            (BENCH_FLEET_SCALE=0.3 for a quick smaller run)
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../shared/job/record.ts";
import { startFleet } from "../shared/local/fleet.ts";
import type { QuotaMode } from "../shared/local/fleet-config.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog, priceFor } from "../shared/model/catalog.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { documentOf, rng } from "./documents.ts";

const SCALE = Number(process.env.BENCH_FLEET_SCALE ?? 1);
const WORKERS = Number(process.env.BENCH_FLEET_WORKERS ?? 8);
const MAX_OUTPUT = 64;
/** When the second job is submitted, after the bulk job. */
const LATE_AFTER_MS = 15_000 * SCALE;
/** Hard bound on one arm. */
const ARM_TIMEOUT_MS = 300_000;

/** The fleet running now: killed if this process is told to stop, so no worker outlives the bench. */
let running: { processes: { pid?: number; kill(s?: NodeJS.Signals): boolean }[] } | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const p of running?.processes ?? []) p.kill("SIGKILL");
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------

/** Target sizes: mostly small, some medium, a few large (up to ~200K tokens). */
function bulkSizes(): number[] {
  const r = rng(42);
  const logUniform = (lo: number, hi: number) => Math.round(Math.exp(Math.log(lo) + r() * (Math.log(hi) - Math.log(lo))));
  const small = Array.from({ length: 170 }, () => logUniform(1_000, 8_000));
  const medium = Array.from({ length: 24 }, () => logUniform(10_000, 50_000));
  const large = Array.from({ length: 6 }, (_, i) => 100_000 + i * 20_000);
  // Interleaved so large documents are not all queued together.
  const out = [...small];
  for (const [i, t] of [...medium, ...large].entries()) out.splice(Math.floor((i * 7919) % out.length), 0, t);
  return out;
}
const lateSizes = () => {
  const r = rng(7);
  return Array.from({ length: 30 }, () => Math.round(1_000 + r() * 3_000));
};

// ---------------------------------------------------------------------------------------------

interface ArmResult {
  mode: QuotaMode;
  makespanS: number;
  idealS: number;
  ratio: number;
  requests: number;
  rejected429: number;
  rejected429Share: number;
  otherErrors: number;
  items: number;
  failedItems: number;
  skippedItems: number;
  okCalls: number;
  duplicateCalls: number;
  callsPerItem: number;
  tokens: number;
  spendUsd: number;
  capUsd: number;
  spendWithinCap: boolean;
  lateJobS: number;
  /** Submit to the first request at the simulator, and the last request to the last manifest: what the ideal leaves out. */
  firstCallS: number;
  tailS: number;
  workerProcesses: number;
  /** 429s by provider error code, and why items failed: what to look at when a target is missed. */
  refusedBy: Record<string, number>;
  failures: string[];
}

async function upload(store: ObjectStore, bucket: string, prefix: string, sizes: number[], docBase: number) {
  const docs: { source: string; uri: string }[] = [];
  let expectedUsd = 0;
  const model = getModel(loadCatalog(), "qwen3-max");
  const batch = 16;
  for (let i = 0; i < sizes.length; i += batch) {
    await Promise.all(
      sizes.slice(i, i + batch).map(async (t, j) => {
        const n = i + j;
        const key = `inputs/${prefix}/doc-${n}.md`;
        await store.put(key, documentOf(docBase + n, t), "text/markdown");
        docs[n] = { source: `${prefix}-${n}.md`, uri: s3Uri(bucket, key) };
        expectedUsd += priceFor(model, { inputTokens: t + 60, outputTokens: MAX_OUTPUT, cachedTokens: 0 }).cost;
      }),
    );
  }
  return { docs, expectedUsd };
}

async function submit(stack: LocalStack, name: string, docs: { source: string; uri: string }[], capUsd: number | null): Promise<JobRecord> {
  const store = new ObjectStore(stack.s3, stack.bucket);
  const limits = capUsd === null ? "" : `limits: { maxCostUsd: ${capUsd.toFixed(2)} }\n`;
  const spec = parseJobText(
    `name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise the main figures.\nthinking: { enabled: false }\nmaxOutputTokens: ${MAX_OUTPUT}\noutput: { format: text, onTruncated: keep }\n${limits}`,
    `${name}.yaml`,
  );
  return submitJob(
    { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives },
    { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: docs, outputSchema: null },
  );
}

async function waitManifest(stack: LocalStack, job: JobRecord, until: number): Promise<Manifest & { doneAt: number }> {
  const store = new ObjectStore(stack.s3, stack.bucket);
  for (;;) {
    const m = await store.getJson<Manifest>(keys.manifest(job.jobId));
    if (m && m.status !== "running") return { ...m, doneAt: Date.now() };
    if (Date.now() > until) throw new Error(`job ${job.name} did not finish within the arm's bound`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * 429s by the window that refused them. The simulator sends insufficient_quota for both token
 * windows; which one is re-derived here from the admitted calls' arrival times (approximate: the
 * simulator dates admission a little after arrival).
 */
function refusals(calls: Simulator["calls"], quota: { rpm: number; tpm: number }): Record<string, number> {
  const out: Record<string, number> = {};
  const ok = calls.filter((c) => c.status === 200);
  for (const c of calls.filter((x) => x.status === 429)) {
    let label = c.errorCode ?? "?";
    if (label === "insufficient_quota") {
      const minute = ok.filter((o) => o.receivedAt < c.receivedAt && o.receivedAt > c.receivedAt - 60_000).reduce((s, o) => s + o.promptTokens + o.completionTokens, 0);
      label += minute + c.promptTokens > quota.tpm ? " (TPM, minute)" : ` (TPS, second${c.promptTokens > quota.tpm / 60 ? ", request > TPS" : ""})`;
    }
    out[label] = (out[label] ?? 0) + 1;
  }
  return out;
}

async function runArm(mode: QuotaMode, quota: { rpm: number; tpm: number }, catalogPath: string, bulk: number[], late: number[]): Promise<ArmResult> {
  const stack = await startLocalStack();
  let sim: Simulator | undefined;
  try {
    sim = await startSimulator({ port: 0, rpm: quota.rpm, tpm: quota.tpm, decodeTokensPerSecond: 0, catalogPath });
    const store = new ObjectStore(stack.s3, stack.bucket);
    const bulkDocs = await upload(store, stack.bucket, "bulk", bulk, 0);
    const lateDocs = await upload(store, stack.bucket, "late", late, 10_000);
    const capUsd = Math.ceil(bulkDocs.expectedUsd * 1.5 * 100) / 100;
    const settings = loadSettings({ DASHSCOPE_API_KEY: "sk-bench", QWEN_BASE_URL: sim.baseURL, LONGDOC_LOG: "error", LONGDOC_CATALOG: catalogPath });
    const fleet = await startFleet({ stack, workers: WORKERS, settings, endpoint: { apiKey: "sk-bench", baseURL: sim.baseURL }, log: silentLog, quotaMode: mode });
    running = fleet;
    try {
      const t0 = Date.now();
      const bulkJob = await submit(stack, "bulk", bulkDocs.docs, capUsd);
      const until = t0 + ARM_TIMEOUT_MS;
      const bulkDone = waitManifest(stack, bulkJob, until);
      await new Promise((r) => setTimeout(r, LATE_AFTER_MS));
      const tLate = Date.now();
      const lateJob = await submit(stack, "late", lateDocs.docs, null);
      const [mb, ml] = await Promise.all([bulkDone, waitManifest(stack, lateJob, until)]);
      const makespanS = (Math.max(mb.doneAt, ml.doneAt) - t0) / 1000;
      const calls = sim.calls;
      const ok = calls.filter((c) => c.status === 200);
      const rejected429 = calls.filter((c) => c.status === 429).length;
      const tokens = ok.reduce((s, c) => s + c.promptTokens + c.completionTokens, 0);
      // The work to do: every document's prompt (seen on any call, refused ones too) plus its answer,
      // so an item that failed still counts and both arms are measured against the same ideal.
      const work = new Map<string, number>();
      for (const c of calls) {
        const doc = c.documents[0]?.source;
        if (doc) work.set(doc, Math.max(work.get(doc) ?? 0, c.promptTokens + (c.status === 200 ? c.completionTokens : MAX_OUTPUT)));
      }
      const workTokens = [...work.values()].reduce((a, b) => a + b, 0);
      const idealS = Math.max(workTokens / quota.tpm, work.size / quota.rpm) * 60;
      const items = mb.counts.total + ml.counts.total;
      const succeeded = mb.counts.succeeded + ml.counts.succeeded;
      return {
        mode,
        makespanS,
        idealS,
        ratio: makespanS / idealS,
        requests: calls.length,
        rejected429,
        rejected429Share: calls.length ? rejected429 / calls.length : 0,
        otherErrors: calls.filter((c) => c.status !== 200 && c.status !== 429).length,
        items,
        failedItems: mb.counts.failed + ml.counts.failed,
        skippedItems: mb.counts.skipped + ml.counts.skipped,
        okCalls: ok.length,
        duplicateCalls: ok.length - succeeded,
        callsPerItem: succeeded ? ok.length / succeeded : 0,
        tokens,
        spendUsd: mb.cost,
        capUsd,
        spendWithinCap: mb.cost <= capUsd,
        lateJobS: (ml.doneAt - tLate) / 1000,
        firstCallS: (Math.min(...calls.map((c) => c.receivedAt)) - t0) / 1000,
        tailS: (Math.max(mb.doneAt, ml.doneAt) - Math.max(...calls.map((c) => c.receivedAt))) / 1000,
        workerProcesses: fleet.processes.length,
        refusedBy: refusals(calls, quota),
        failures: [...mb.items, ...ml.items].filter((i) => i.status === "failed").map((i) => `${i.documents.join(",")}: ${i.error?.kind} ${i.error?.message.slice(0, 160)}`),
      };
    } finally {
      await fleet.stop();
      running = undefined;
    }
  } finally {
    await sim?.stop();
    await stack.stop();
  }
}

// ---------------------------------------------------------------------------------------------

const bulk = bulkSizes().map((t) => Math.max(500, Math.round(t * (SCALE < 1 ? Math.sqrt(SCALE) : 1))));
const late = lateSizes();
const bulkUsed = SCALE < 1 ? bulk.slice(0, Math.max(20, Math.round(bulk.length * SCALE))) : bulk;
const lateUsed = SCALE < 1 ? late.slice(0, Math.max(5, Math.round(late.length * SCALE))) : late;
// Quota: the jobs' tokens (input + framing + answer cap) take ~60 s × SCALE at TPM; RPM leaves tokens binding.
const plannedTokens = [...bulkUsed, ...lateUsed].reduce((s, t) => s + t + 60 + MAX_OUTPUT, 0);
const quota = { tpm: Math.round(plannedTokens / SCALE / 1000) * 1000, rpm: Math.max(60, Math.round(((bulkUsed.length + lateUsed.length) * 1.5) / SCALE / 60) * 60) };
const dir = await mkdtemp(path.join(tmpdir(), "longdoc-bench-fleet-"));
const catalogPath = path.join(dir, "catalog.json");
await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": { rpm: quota.rpm, tpm: quota.tpm } } }));

console.error(
  `bench:fleet: ${bulkUsed.length} + ${lateUsed.length} documents (${bulkUsed.reduce((a, b) => a + b, 0)} + ${lateUsed.reduce((a, b) => a + b, 0)} target tokens, largest ${Math.max(...bulkUsed)}), ` +
    `quota rpm ${quota.rpm} tpm ${quota.tpm}, ${WORKERS} worker processes per arm`,
);
const results: ArmResult[] = [];
try {
  for (const mode of ["shared", "fixed-share"] as const) {
    console.error(`bench:fleet: arm ${mode}...`);
    results.push(await runArm(mode, quota, catalogPath, bulkUsed, lateUsed));
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const [ours, base] = results as [ArmResult, ArmResult];
const f = (n: number, d = 2) => n.toFixed(d);
const pct = (n: number) => `${(n * 100).toFixed(2)}%`;
const rows: [string, (r: ArmResult) => string][] = [
  ["worker processes", (r) => String(r.workerProcesses)],
  ["items (bulk + late)", (r) => String(r.items)],
  ["ideal time s (max tokens/TPM, req/RPM)", (r) => f(r.idealS, 1)],
  ["makespan s", (r) => f(r.makespanS, 1)],
  ["makespan / ideal", (r) => f(r.ratio, 3)],
  ["late job s (submit to manifest)", (r) => f(r.lateJobS, 1)],
  ["submit to first request s", (r) => f(r.firstCallS, 2)],
  ["last request to last manifest s", (r) => f(r.tailS, 2)],
  ["requests to the API", (r) => String(r.requests)],
  ["refused with 429", (r) => `${r.rejected429} (${pct(r.rejected429Share)})`],
  ["other error responses", (r) => String(r.otherErrors)],
  ["failed / skipped items", (r) => `${r.failedItems} / ${r.skippedItems}`],
  ["successful calls per item", (r) => `${f(r.callsPerItem, 3)} (duplicates ${r.duplicateCalls})`],
  ["tokens billed (prompt + completion)", (r) => String(r.tokens)],
  ["bulk spend / cap USD", (r) => `${f(r.spendUsd, 4)} / ${f(r.capUsd)} ${r.spendWithinCap ? "ok" : "OVER"}`],
];
console.log(`quota: rpm ${quota.rpm}, tpm ${quota.tpm} (and per second: ${f(quota.rpm / 60, 1)} requests, ${Math.round(quota.tpm / 60)} tokens)`);
console.log(`${"".padEnd(40)}${"longdoc (shared)".padStart(22)}${"baseline (fixed share)".padStart(26)}`);
for (const [label, get] of rows) console.log(`${label.padEnd(40)}${get(ours).padStart(22)}${get(base).padStart(26)}`);
const targets = {
  ratio: ours.ratio <= 1.1,
  rejected429Share: ours.rejected429Share <= 0.01,
  failedItems: ours.failedItems === 0,
  oneCallPerItem: ours.duplicateCalls === 0 && ours.okCalls === ours.items,
  spendWithinCap: ours.spendWithinCap,
};
for (const r of results) {
  console.log(`${r.mode}: 429s by code ${JSON.stringify(r.refusedBy)}`);
  for (const f of r.failures) console.log(`${r.mode}: failed ${f}`);
}
console.log(`targets (ratio <= 1.10, <= 1% refused, no failed item, one call per item, spend <= cap): ${Object.entries(targets).map(([k, v]) => `${k} ${v ? "met" : "MISSED"}`).join(", ")}`);
const pick = (r: ArmResult) => ({
  ratio: +f(r.ratio, 3),
  makespanS: +f(r.makespanS, 1),
  idealS: +f(r.idealS, 1),
  requests: r.requests,
  rejected429: r.rejected429,
  rejected429Share: +r.rejected429Share.toFixed(4),
  failedItems: r.failedItems,
  skippedItems: r.skippedItems,
  duplicateCalls: r.duplicateCalls,
  callsPerItem: +f(r.callsPerItem, 3),
  spendUsd: +f(r.spendUsd, 4),
  capUsd: r.capUsd,
});
console.log(
  JSON.stringify({
    bench: "fleet",
    quota,
    items: ours.items,
    workerProcesses: ours.workerProcesses,
    ...pick(ours),
    targets,
    baseline: { mode: "fixed-share", workerProcesses: base.workerProcesses, ...pick(base) },
  }),
);
