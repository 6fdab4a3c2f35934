/**
 * A job the quota binds for most of its run, compressed in time: does waiting for quota stay
 * cheap? Mixed-size documents (~1K to ~100K tokens) on a fleet of worker processes against ONE
 * simulator enforcing RPM, TPM and their per-second shares (429 when over), with the quota scaled
 * down (a catalog override, so workers and simulator agree) so the job needs about four minutes of
 * it. The task queue's dead-letter limit (maxReceiveCount) is 5 for the run: an item that waits
 * for quota must do so without being received again and again, or it is dead-lettered.
 *
 * Prints the quota's ideal time (max of tokens / TPM and requests / RPM), the makespan and their
 * ratio, deliveries per item (max and mean), dead-lettered, failed items and duplicate calls.
 * Targets: ratio ≤ 1.10, max deliveries ≤ 3, 0 dead-lettered, 0 failed, 0 duplicate calls.
 *
 *   npm run bench:long-job        (BENCH_LONG_ITEMS=300, BENCH_LONG_WORKERS=4, BENCH_LONG_MINUTES=4)
 *
 * Deliveries per item come from the manifest's `deliveries` when the workers record it; otherwise
 * from the workers' own log lines (each hand-back of a task names its message), said so in the output.
 * The last stdout line is one JSON object with the figures.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { startFleet } from "../shared/local/fleet.ts";
import { startLocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { documentOf, rng } from "./documents.ts";
import { countTokens } from "../shared/tokens/index.ts";

const ITEMS = Number(process.env.BENCH_LONG_ITEMS ?? 300);
const WORKERS = Number(process.env.BENCH_LONG_WORKERS ?? 4);
/** How long the job's tokens take at the scaled-down TPM. */
const MINUTES = Number(process.env.BENCH_LONG_MINUTES ?? 4);
const MAX_RECEIVE_COUNT = 5;
const MAX_OUTPUT = 64;
/** Hard bound on the run (the benchmark must end within 10 minutes). */
const RUN_TIMEOUT_MS = 9 * 60_000;

/** The fleet running now: killed if this process is told to stop, so no worker outlives the bench. */
let running: { processes: { kill(s?: NodeJS.Signals): boolean }[] } | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const p of running?.processes ?? []) p.kill("SIGKILL");
    process.exit(130);
  });
}

/** Mostly small documents, some medium, a few large; interleaved so the large ones are spread over the queue. */
function sizes(n: number): number[] {
  const r = rng(2026);
  const logUniform = (lo: number, hi: number) => Math.round(Math.exp(Math.log(lo) + r() * (Math.log(hi) - Math.log(lo))));
  const large = Math.max(1, Math.round(n * 0.03));
  const medium = Math.max(1, Math.round(n * 0.12));
  const out = Array.from({ length: n - medium - large }, () => logUniform(1_000, 8_000));
  const big = [...Array.from({ length: medium }, () => logUniform(10_000, 40_000)), ...Array.from({ length: large }, (_, i) => 60_000 + ((i * 13_000) % 40_000))];
  for (const [i, t] of big.entries()) out.splice(Math.floor((i * 7919) % Math.max(1, out.length)), 0, t);
  return out;
}

const docSizes = sizes(ITEMS);
// Quota: the job's tokens (input + framing + answer cap) take MINUTES at TPM; RPM leaves tokens binding.
const plannedTokens = docSizes.reduce((s, t) => s + t + 60 + MAX_OUTPUT, 0);
const quota = {
  tpm: Math.max(Math.max(...docSizes) * 2, Math.round(plannedTokens / MINUTES / 1000) * 1000),
  rpm: Math.max(60, Math.round((ITEMS * 2) / MINUTES / 60) * 60),
};
const dir = await mkdtemp(path.join(tmpdir(), "longdoc-bench-long-"));
const catalogPath = path.join(dir, "catalog.json");
await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": { rpm: quota.rpm, tpm: quota.tpm } } }));
console.error(
  `bench:long-job: ${ITEMS} documents (${docSizes.reduce((a, b) => a + b, 0)} target tokens, largest ${Math.max(...docSizes)}), quota rpm ${quota.rpm} tpm ${quota.tpm}, ` +
    `${WORKERS} worker processes, maxReceiveCount ${MAX_RECEIVE_COUNT}`,
);

const stack = await startLocalStack({ maxReceives: MAX_RECEIVE_COUNT });
let sim: Simulator | undefined;
let result: Record<string, unknown>;
try {
  sim = await startSimulator({ port: 0, rpm: quota.rpm, tpm: quota.tpm, decodeTokensPerSecond: 0, catalogPath });
  const store = new ObjectStore(stack.s3, stack.bucket);
  const documents: { source: string; uri: string }[] = [];
  /** Each document's exact tokens: the ideal counts every item, including any that never reached the model. */
  const docTokens = new Map<string, number>();
  for (let i = 0; i < docSizes.length; i += 16) {
    await Promise.all(
      docSizes.slice(i, i + 16).map(async (t, j) => {
        const key = `inputs/long/doc-${i + j}.md`;
        const text = documentOf(i + j, t);
        await store.put(key, text, "text/markdown");
        documents[i + j] = { source: `long-${i + j}.md`, uri: s3Uri(stack.bucket, key) };
        docTokens.set(`long-${i + j}.md`, countTokens(text));
      }),
    );
  }
  // Each hand-back of a task is a log line naming its message: the deliveries the manifest may not record.
  const returns = new Map<string, number>();
  const settings = loadSettings({ DASHSCOPE_API_KEY: "sk-bench", QWEN_BASE_URL: sim.baseURL, LONGDOC_LOG: "info", LONGDOC_CATALOG: catalogPath });
  const fleet = await startFleet({
    stack,
    workers: WORKERS,
    settings,
    endpoint: { apiKey: "sk-bench", baseURL: sim.baseURL },
    log: silentLog,
    onLog: (line) => {
      if ((line.msg === "task waits in the queue" || line.msg === "task returned to the queue") && typeof line.messageId === "string") {
        returns.set(line.messageId, (returns.get(line.messageId) ?? 0) + 1);
      }
    },
  });
  running = fleet;
  try {
    const spec = parseJobText(
      `name: long-job\ndocuments:\n  - path: x\nprompt: Summarise the main figures.\nthinking: { enabled: false }\nmaxOutputTokens: ${MAX_OUTPUT}\noutput: { format: text, onTruncated: keep }\n`,
      "long-job.yaml",
    );
    const t0 = Date.now();
    const job = await submitJob(
      { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives, coord: createCoordinator(stack.dynamo.client, stack.dynamo.table) },
      { spec, model: getModel(loadCatalog(catalogPath), "qwen3-max"), documents, outputSchema: null },
    );
    let manifest: Manifest | undefined;
    for (;;) {
      manifest = await store.getJson<Manifest>(keys.manifest(job.jobId));
      if (manifest && manifest.status !== "running") break;
      if (Date.now() - t0 > RUN_TIMEOUT_MS) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const doneAt = Date.now();
    const finished = manifest !== undefined && manifest.status !== "running";
    const makespanS = (doneAt - t0) / 1000;
    const calls = sim.calls;
    const ok = calls.filter((c) => c.status === 200);
    // The work: every document's prompt and its answer; a prompt seen at the simulator counts as
    // seen, one never sent as its document plus the framing the seen prompts had around theirs.
    const seen = new Map<string, number>();
    const framing: number[] = [];
    for (const c of calls) {
      const doc = c.documents[0]?.source;
      if (!doc) continue;
      seen.set(doc, Math.max(seen.get(doc) ?? 0, c.promptTokens + (c.status === 200 ? c.completionTokens : MAX_OUTPUT)));
      if (docTokens.has(doc)) framing.push(c.promptTokens - docTokens.get(doc)!);
    }
    const frame = framing.length ? framing.sort((a, b) => a - b)[Math.floor(framing.length / 2)]! : 60;
    const workTokens = [...docTokens].reduce((s, [doc, t]) => s + (seen.get(doc) ?? t + frame + MAX_OUTPUT), 0);
    const idealS = Math.max(workTokens / quota.tpm, docTokens.size / quota.rpm) * 60;
    const items = manifest?.items ?? [];
    const deadLettered = items.filter((i) => i.error?.kind === "worker_crashed").length;
    const failedItems = items.filter((i) => i.status === "failed").length;
    const succeeded = items.filter((i) => i.status === "succeeded").length;
    // Deliveries: the manifest's per-item count when the workers record it, else one final
    // delivery per item plus every logged hand-back (a dead-lettered task's last receive is a hand-back too).
    const recorded = items.length > 0 && items.every((i) => typeof (i as { deliveries?: unknown }).deliveries === "number");
    const perItem = recorded
      ? items.map((i) => (i as unknown as { deliveries: number }).deliveries)
      : (() => {
          const handBacks = [...returns.values()];
          const once = Math.max(0, items.length - handBacks.length);
          return [...handBacks.map((n) => Math.min(MAX_RECEIVE_COUNT, n + 1)), ...Array.from({ length: once }, () => 1)];
        })();
    const maxDeliveries = perItem.length ? Math.max(...perItem) : 0;
    const meanDeliveries = perItem.length ? perItem.reduce((a, b) => a + b, 0) / perItem.length : 0;
    result = {
      bench: "long-job",
      items: items.length,
      finished,
      workerProcesses: fleet.processes.length,
      quota,
      idealS: +idealS.toFixed(1),
      makespanS: +makespanS.toFixed(1),
      ratio: +(makespanS / idealS).toFixed(3),
      maxDeliveries,
      meanDeliveries: +meanDeliveries.toFixed(3),
      deliveriesFrom: recorded ? "manifest" : "worker logs",
      deadLettered,
      maxReceiveCount: MAX_RECEIVE_COUNT,
      failedItems,
      duplicateCalls: ok.length - succeeded,
      requests: calls.length,
      rejected429: calls.filter((c) => c.status === 429).length,
      failures: items.filter((i) => i.status === "failed").slice(0, 5).map((i) => `${i.id}: ${i.error?.kind} ${i.error?.message.slice(0, 120)}`),
    };
  } finally {
    await fleet.stop();
    running = undefined;
  }
} finally {
  await sim?.stop();
  await stack.stop();
  await rm(dir, { recursive: true, force: true });
}

const r = result as {
  items: number; finished: boolean; workerProcesses: number; idealS: number; makespanS: number; ratio: number; maxDeliveries: number; meanDeliveries: number; deliveriesFrom: string;
  deadLettered: number; failedItems: number; duplicateCalls: number; requests: number; rejected429: number; failures: string[];
};
const line = (label: string, value: string | number) => console.log(`${label.padEnd(44)}${String(value).padStart(14)}`);
console.log(`quota: rpm ${quota.rpm}, tpm ${quota.tpm} (per second: ${(quota.rpm / 60).toFixed(1)} requests, ${Math.round(quota.tpm / 60)} tokens); maxReceiveCount ${MAX_RECEIVE_COUNT}`);
line("items", r.items);
line("worker processes", r.workerProcesses);
line("quota's ideal time s (tokens/TPM, req/RPM)", r.idealS);
line(`makespan s${r.finished ? "" : " (NOT finished: bound reached)"}`, r.makespanS);
line("makespan / ideal", r.ratio);
line(`deliveries per item, max (${r.deliveriesFrom})`, r.maxDeliveries);
line("deliveries per item, mean", r.meanDeliveries);
line("dead-lettered items", r.deadLettered);
line("failed items", r.failedItems);
line("duplicate calls", r.duplicateCalls);
line("requests to the API / refused with 429", `${r.requests} / ${r.rejected429}`);
for (const f of r.failures) console.log(`failed: ${f}`);
const targets = { ratio: r.ratio <= 1.1, maxDeliveries: r.maxDeliveries <= 3, deadLettered: r.deadLettered === 0, failedItems: r.failedItems === 0, duplicateCalls: r.duplicateCalls === 0 };
console.log(`targets (ratio <= 1.10, max deliveries <= 3, 0 dead-lettered, 0 failed, 0 duplicate calls): ${Object.entries(targets).map(([k, v]) => `${k} ${v ? "met" : "MISSED"}`).join(", ")}`);
const { failures: _f, ...figures } = result;
console.log(JSON.stringify({ ...figures, targets }));
