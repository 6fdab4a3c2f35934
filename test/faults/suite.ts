/**
 * The fault suite: two jobs through the local fleet (separate worker processes) while faults are
 * injected at stated rates, then an audit of what came out. See test/faults/run.ts for the command
 * and docs/reliability.md for what each figure means.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { parseJobText } from "../../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../../shared/job/record.ts";
import type { AwsFaultRule, AwsFaultSpec } from "../../shared/local/aws-faults.ts";
import { startFleet, type Fleet, type WorkerReplaced } from "../../shared/local/fleet.ts";
import { startLocalStack, type LocalStack } from "../../shared/local/stack.ts";
import { silentLog } from "../../shared/log.ts";
import { getModel, loadCatalog } from "../../shared/model/catalog.ts";
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { coordKeys, createCoordinator } from "../../shared/run/coord.ts";
import type { Manifest } from "../../shared/run/manifest.ts";
import { mirrorRun } from "../../shared/run/mirror.ts";
import { keys, ObjectStore } from "../../shared/run/store.ts";
import { loadSettings } from "../../shared/settings.ts";
import { startSimulator, type Simulator } from "../../shared/sim/index.ts";
import { submitJob } from "../../shared/submit/submit.ts";
import { pidOwningPort } from "./pids.ts";
import { startFaultProxy, type FaultProxy } from "./proxy.ts";

export interface SuiteConfig {
  /** Items of the main job (documents), the corrupt PDF and the oversize document included. */
  items: number;
  /** Items of the second job, whose model the endpoint refuses with 401. */
  authItems: number;
  workers: number;
  /** The simulator's random faults (shared/sim/faults.ts grammar). */
  simFaults: string;
  /** Faults for the first model requests, in order, so each of these kinds happens at least once. */
  injectFirst: string[];
  /** Items whose task is queued twice at once. */
  duplicates: number;
  /** Worker processes SIGKILLed while their stream is in flight (the fleet replaces each with a fresh process). */
  kills: number;
  /** Items whose first stream is trickled until the worker's deadline ends it. */
  slow: number;
  /** Messages that are not tasks. */
  poison: number;
  awsRules: Omit<AwsFaultRule, "name">[];
  quota: { rpm: number; tpm: number };
  decodeTokensPerSecond: number;
  /** The simulated Lambda timeout: short, so a slowed stream reaches it. */
  functionTimeoutMs: number;
  /** Hard bound on the whole run. */
  timeoutMs: number;
  seed: number;
}

export const FULL: SuiteConfig = {
  items: 200,
  authItems: 20,
  workers: 4,
  simFaults: "429:0.02,quota:0.02,burst:0.02,500:0.02,503:0.02,drop:0.03,seed=13",
  injectFirst: ["429", "quota", "burst", "500", "503", "drop"],
  duplicates: 10,
  kills: 2,
  slow: 2,
  poison: 2,
  awsRules: [
    { service: "s3", commands: ["GetObject", "HeadObject"], error: "SlowDown", probability: 0.03, insideRetries: true },
    { service: "s3", commands: ["PutObject"], error: "InternalError", probability: 0.03, insideRetries: true },
    { service: "dynamodb", commands: [], error: "ThrottlingException", probability: 0.02, insideRetries: true },
    { service: "s3", commands: ["GetObject"], error: "InternalError", probability: 0.01, insideRetries: false, max: 1 },
    { service: "s3", commands: ["PutObject"], error: "SlowDown", probability: 0.01, insideRetries: false, max: 1 },
    { service: "dynamodb", commands: ["UpdateItem", "PutItem"], error: "ThrottlingException", probability: 0.005, insideRetries: false, max: 1 },
  ],
  // Low enough to bind: 220 calls at 150 a minute, so the shared pacing is what keeps 429s away.
  quota: { rpm: 150, tpm: 400_000 },
  decodeTokensPerSecond: 150,
  functionTimeoutMs: 20_000,
  timeoutMs: 300_000,
  seed: 13,
};

/** Inside `npm test`: fewer items and kinds, under a minute; the AWS errors only where the SDK retries them. */
export const SMALL: SuiteConfig = {
  ...FULL,
  items: 40,
  authItems: 6,
  workers: 3,
  simFaults: "429:0.03,quota:0.03,burst:0.03,500:0.03,503:0.03,drop:0.03,seed=5",
  duplicates: 4,
  kills: 1,
  slow: 1,
  poison: 1,
  awsRules: FULL.awsRules.filter((r) => r.insideRetries),
  quota: { rpm: 400, tpm: 1_000_000 },
  decodeTokensPerSecond: 300,
  functionTimeoutMs: 12_000,
  timeoutMs: 90_000,
  seed: 5,
};

/** The full run's jobs and quota without any injected fault: the throughput to compare the faulted run with. */
export const CLEAN: SuiteConfig = { ...FULL, simFaults: "seed=1", injectFirst: [], duplicates: 0, kills: 0, slow: 0, poison: 0, awsRules: [] };

const AUTH_MODEL = "qwen3-max-2026-01-23";
const TRANSIENT_MODEL_KINDS = new Set(["model_unavailable", "model_error", "rate_limited", "deadline"]);
const MAX_DOCUMENT_BYTES = 64 * 1024;
const POISON_MARK = "fault-suite-poison";
const ruleName = (r: Omit<AwsFaultRule, "name">) => `${r.service}-${r.commands.length ? r.commands.join("+") : "any"}-${r.error}-${r.insideRetries ? "retried-by-sdk" : "past-sdk-retries"}`;

export interface MatrixRow {
  fault: string;
  injected: number;
  itemsAffected: number;
  outcome: string;
}

export interface SuiteResult {
  items: number;
  /** Items without a result.json (no terminal record at all). */
  lost: number;
  /** Items not listed once, with their result's status, in a final manifest (all of them when the manifest was never written). */
  notInManifest: number;
  duplicateSuccessfulCalls: number;
  partialDebris: number;
  dlqMessages: number;
  /** S3 objects and output files holding the key (the log scan is run.ts's, it adds its own count). */
  keyLeaks: number;
  wrongOutcomes: number;
  quotaExceeded: boolean;
  faults: Record<string, number>;
  /** The main job: seconds from submit to its final manifest, items per minute, and model requests answered per minute against the quota. */
  throughput: { mainMakespanS: number | null; mainItemsPerMinute: number | null; answeredPerMinute: number; rpm: number };
  matrix: MatrixRow[];
  details: Record<string, unknown>;
  apiKey: string;
  elapsedS: number;
}

/** Deterministic prose with a tag line the proxy can read: `# fault-doc <tag>`. */
function documentOf(tag: string, n: number): string {
  const words = ["revenue", "margin", "segment", "grew", "costs", "cash", "the", "quarter", "risk", "demand", "and", "of"];
  let s = n * 7919 + 17;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s);
  const sentences: string[] = [];
  for (let i = 0, count = 20 + (n % 40); i < count; i++) sentences.push(Array.from({ length: 12 }, () => words[next() % words.length]).join(" ") + ".");
  return `# fault-doc ${tag}\n\n${sentences.join(" ")}\n`;
}

const CORRUPT_PDF = new TextEncoder().encode("%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\nxref\n0 3\ngarbage that is not a cross-reference table\n%%EOF\n");

async function queueDepth(stack: LocalStack, url: string): Promise<number> {
  const a = (await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }))).Attributes ?? {};
  return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0);
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

/** Peak requests and tokens admitted in any 60 s window, from the simulator's record. */
function peakMinute(calls: Simulator["calls"]): { requests: number; tokens: number } {
  const ok = calls.filter((c) => c.status === 200).sort((a, b) => a.receivedAt - b.receivedAt);
  let requests = 0;
  let tokens = 0;
  let lo = 0;
  let windowTokens = 0;
  for (let hi = 0; hi < ok.length; hi++) {
    windowTokens += ok[hi]!.promptTokens + ok[hi]!.completionTokens;
    while (ok[hi]!.receivedAt - ok[lo]!.receivedAt >= 60_000) windowTokens -= ok[lo]!.promptTokens + ok[lo++]!.completionTokens;
    requests = Math.max(requests, hi - lo + 1);
    tokens = Math.max(tokens, windowTokens);
  }
  return { requests, tokens };
}

export async function runFaultSuite(cfg: SuiteConfig, progress: (line: string) => void = () => {}): Promise<SuiteResult> {
  const t0 = Date.now();
  const apiKey = `sk-fault-${randomBytes(12).toString("hex")}`;
  const dir = await mkdtemp(path.join(tmpdir(), "longdoc-faults-"));
  const catalogPath = path.join(dir, "catalog.json");
  await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": cfg.quota } }));
  const catalog = loadCatalog(catalogPath);
  const countsFile = path.join(dir, "aws-faults.txt");
  await writeFile(countsFile, "");
  const awsSpec: AwsFaultSpec = { seed: cfg.seed, countsFile, rules: cfg.awsRules.map((r) => ({ ...r, name: ruleName(r) })) };

  const stack = await startLocalStack({ visibilityTimeoutS: 10, maxReceives: 30 });
  const sim = await startSimulator({ port: 0, apiKey, rpm: cfg.quota.rpm, tpm: cfg.quota.tpm, decodeTokensPerSecond: cfg.decodeTokensPerSecond, faults: cfg.simFaults, catalogPath });
  const slowTags = new Set(Array.from({ length: cfg.slow }, (_, i) => `a-${String(7 + i * 13).padStart(4, "0")}`));
  for (const kind of cfg.injectFirst) sim.injectFaults({ kind, count: 1, ...(kind === "drop" && { afterDeltas: 2 }) });
  // The streams to kill mid-way are held open after their first chunk, so the kill lands inside them.
  const holdTags = new Set(Array.from({ length: cfg.kills }, (_, i) => `a-${String(Math.floor(((i + 1) * cfg.items) / (cfg.kills + 1)) + 1).padStart(4, "0")}`));
  const proxy: FaultProxy = await startFaultProxy({ target: sim.baseURL, authFailModel: AUTH_MODEL, slowTags, slowChunkMs: Math.ceil(cfg.functionTimeoutMs / 4), holdTags, holdMs: 15_000 });
  const fleets: Fleet[] = [];
  const store = new ObjectStore(stack.s3, stack.bucket);
  try {
    // --- documents and jobs ------------------------------------------------------------------
    const aDocs: { source: string; uri: string }[] = [];
    for (let i = 0; i < cfg.items; i++) {
      const tag = `a-${String(i).padStart(4, "0")}`;
      let key = `inputs/faults/${tag}.md`;
      let body: Uint8Array | string = documentOf(tag, i);
      if (i === 3) [key, body] = [`inputs/faults/${tag}.pdf`, CORRUPT_PDF];
      if (i === 5) body = `# fault-doc ${tag}\n\n${"Oversize padding line.\n".repeat(Math.ceil((MAX_DOCUMENT_BYTES * 1.5) / 23))}`;
      await store.put(key, body, key.endsWith(".pdf") ? "application/pdf" : "text/markdown");
      aDocs.push({ source: path.basename(key), uri: s3Uri(stack.bucket, key) });
    }
    const bDocs: { source: string; uri: string }[] = [];
    for (let i = 0; i < cfg.authItems; i++) {
      const tag = `b-${String(i).padStart(4, "0")}`;
      await store.put(`inputs/faults/${tag}.md`, documentOf(tag, 1000 + i), "text/markdown");
      bDocs.push({ source: `${tag}.md`, uri: s3Uri(stack.bucket, `inputs/faults/${tag}.md`) });
    }
    const coord = createCoordinator(stack.dynamo.client, stack.dynamo.table);
    const submitDeps = { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives, coord };
    const specOf = (name: string, model: string) =>
      parseJobText(
        `name: ${name}\nmodel: ${model}\ndocuments:\n  - path: x\nprompt: Summarise the figures.\nthinking: { enabled: false }\nmaxOutputTokens: 1024\nlimits: { maxDocumentBytes: ${MAX_DOCUMENT_BYTES} }\n`,
        `${name}.yaml`,
      );
    const jobA = await submitJob(submitDeps, { spec: specOf("faults-main", "qwen3-max"), model: getModel(catalog, "qwen3-max"), documents: aDocs, outputSchema: null });
    const jobB = await submitJob(submitDeps, { spec: specOf("faults-auth", AUTH_MODEL), model: getModel(catalog, AUTH_MODEL), documents: bDocs, outputSchema: null });
    // Duplicates: a second copy of some tasks, queued at the same moment as the first.
    const dupItems = jobA.items.filter((_, i) => i % Math.max(1, Math.floor(cfg.items / cfg.duplicates)) === 1).slice(0, cfg.duplicates);
    const entries = dupItems.map((it, i) => ({ Id: `d${i}`, MessageBody: JSON.stringify({ v: 1, jobId: jobA.jobId, itemId: it.id, bucket: stack.bucket, documents: it.documents.map((d) => d.uri) }) }));
    for (let i = 0; i < cfg.poison; i++) entries.push({ Id: `p${i}`, MessageBody: i % 2 ? JSON.stringify({ v: 1, note: POISON_MARK }) : `${POISON_MARK}: this is not a task` });
    for (let i = 0; i < entries.length; i += 10) await stack.sqs.send(new SendMessageBatchCommand({ QueueUrl: stack.queueUrl, Entries: entries.slice(i, i + 10) }));
    progress(`submitted ${jobA.items.length} + ${jobB.items.length} items, ${dupItems.length} duplicate and ${cfg.poison} poison messages`);

    // --- the fleet ---------------------------------------------------------------------------
    const settings = loadSettings({ DASHSCOPE_API_KEY: apiKey, QWEN_BASE_URL: proxy.baseURL, LONGDOC_LOG: "info", LONGDOC_CATALOG: catalogPath });
    const replacements: WorkerReplaced[] = [];
    const fleetOptions = {
      onReplaced: (r: WorkerReplaced) => replacements.push(r),
      stack,
      settings,
      endpoint: { apiKey, baseURL: proxy.baseURL },
      log: silentLog,
      functionTimeoutMs: cfg.functionTimeoutMs,
      timing: { backoffBaseMs: 500, backoffCapMs: 4_000, deadlineMarginMs: 2_000 },
      awsFaults: JSON.stringify(awsSpec),
    };
    fleets.push(await startFleet({ ...fleetOptions, workers: cfg.workers }));
    const pids = () => fleets.flatMap((f) => f.processes).filter((p) => p.exitCode === null && p.signalCode === null).map((p) => p.pid!);
    const kills: { pid: number; tag: string | null; at: number }[] = [];

    const final = async (job: JobRecord) => {
      const m = await store.getJson<Manifest>(keys.manifest(job.jobId));
      return m && m.status !== "running" ? m : undefined;
    };
    let manifests: [Manifest | undefined, Manifest | undefined] = [undefined, undefined];
    let lastReport = 0;
    // Nothing moving (no model request, an empty queue) for this long without final manifests is a stall.
    let lastActivity = { at: Date.now(), calls: 0 };
    let stalled = false;
    let mainDoneAt: number | null = null;
    while (Date.now() - t0 < cfg.timeoutMs) {
      manifests = [await final(jobA), await final(jobB)];
      if (manifests[0]) mainDoneAt ??= Date.now();
      if (manifests[0] && manifests[1]) break;
      if (proxy.calls.length !== lastActivity.calls || (await queueDepth(stack, stack.queueUrl)) > 0) lastActivity = { at: Date.now(), calls: proxy.calls.length };
      if (Date.now() - lastActivity.at > 30_000) {
        stalled = true;
        progress("stalled: no model request and an empty queue for 30 s, but a manifest is not final");
        break;
      }
      // SIGKILL the worker process whose held stream is part-way through (some chunks sent, more to come).
      if (kills.length < cfg.kills) {
        const victim = proxy.inFlight().find((c) => c.action === "hold" && c.chunksSent >= 1 && !kills.some((k) => k.tag === c.tag));
        const pid = victim ? pidOwningPort(victim.remotePort, pids()) : null;
        if (victim && pid) {
          process.kill(pid, "SIGKILL");
          kills.push({ pid, tag: victim.tag, at: Date.now() });
          progress(`SIGKILL worker pid ${pid} while streaming ${victim.tag}`);
          // The fleet starts a new process in its place, as Lambda starts a new container.
        }
      }
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        progress(`${Math.round((Date.now() - t0) / 1000)} s: ${proxy.calls.length} model requests, ${proxy.calls.filter((c) => c.delivered).length} answered`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Let duplicates and poison drain (bounded), so the queue's end state is what it should be.
    const drainUntil = Date.now() + 20_000;
    while (Date.now() < drainUntil && (await queueDepth(stack, stack.queueUrl)) > 0) await new Promise((r) => setTimeout(r, 250));
    await Promise.all(fleets.map((f) => f.stop()));
    const elapsedS = (Date.now() - t0) / 1000;
    progress(`run ended after ${elapsedS.toFixed(1)} s; auditing`);

    // --- audit -------------------------------------------------------------------------------
    const problems: string[] = [];
    const replacedPids = new Set(replacements.filter((r) => r.newPid !== null).map((r) => r.pid));
    const notReplaced = kills.filter((k) => !replacedPids.has(k.pid));
    if (notReplaced.length) problems.push(`killed worker process(es) ${notReplaced.map((k) => k.pid).join(", ")} not replaced by the fleet`);
    const [mA, mB] = manifests;
    // Each item's outcome from its result.json (what the manifest is made of), then the manifest checked against it.
    type Outcome = { status: string; attempts: number; error: { kind: string; message: string } | null };
    const byItem = new Map<string, { job: JobRecord; item: JobRecord["items"][number]; entry: Outcome | undefined; tag: string }>();
    let lost = 0;
    let notInManifest = 0;
    const finishCounts: Record<string, string> = {};
    for (const [job, m] of [[jobA, mA], [jobB, mB]] as const) {
      const entries = m?.items ?? [];
      for (const item of job.items) {
        const result = await store.getJson<Outcome>(keys.item(job.jobId, item.id, "result.json"));
        if (!result) lost++;
        const found = entries.filter((e) => e.id === item.id);
        if (!(found.length === 1 && found[0]!.status === result?.status)) notInManifest++;
        byItem.set(item.id + "@" + job.jobId, { job, item, entry: result, tag: item.documents[0]!.source.replace(/\.\w+$/, "") });
      }
      const row = (await stack.dynamo.client.send(new GetItemCommand({ TableName: stack.dynamo.table, Key: { pk: { S: coordKeys.job(job.jobId) } } }))).Item;
      finishCounts[job.name] = `${row?.finished?.N ?? 0}/${job.items.length}`;
      if (!m) problems.push(`job ${job.jobId}: no final manifest${stalled ? " (stalled)" : ` within ${cfg.timeoutMs / 1000} s`}; its finish count is ${finishCounts[job.name]}, results exist for ${job.items.length - [...byItem.values()].filter((v) => v.job === job && !v.entry).length}`);
      else if (entries.length !== job.items.length) problems.push(`job ${job.jobId}: manifest lists ${entries.length} items for ${job.items.length}`);
    }

    // Successful model calls per document tag: the simulator answered in full and the worker received it whole.
    const proxyBySim = new Map(proxy.calls.filter((c) => c.simRequestId).map((c) => [c.simRequestId!, c]));
    const okByTag = new Map<string, number>();
    for (const c of sim.calls) {
      const p = proxyBySim.get(c.requestId);
      if (c.status === 200 && c.outcome === "ok" && p?.delivered) okByTag.set(p.tag ?? "?", (okByTag.get(p.tag ?? "?") ?? 0) + 1);
    }
    const duplicateSuccessfulCalls = [...okByTag.values()].reduce((s, n) => s + Math.max(0, n - 1), 0);
    // For each item paid twice: its model requests in order (proxy seq, status, delivered, what the simulator did).
    const itemKeys = await store.listKeys(keys.itemsPrefix(jobA.jobId));
    const paidTwiceRows = [...okByTag].filter(([, n]) => n > 1).map(async ([tag]) => ({
      tag,
      // What the item's attempts recorded, to see what sent it back to the queue after a paid call.
      attemptRecords: await Promise.all(
        itemKeys.filter((k) => k.includes(`-${tag}/attempts/`) && k.endsWith(".json")).map(async (k) => JSON.stringify(await store.getJson(k)).slice(0, 300)),
      ),
      requests: proxy.calls.filter((c) => c.tag === tag).map((c) => {
        const sc = sim.calls.find((x) => x.requestId === c.simRequestId);
        return { seq: c.seq, at: c.startedAt - t0, status: c.status, delivered: c.delivered, action: c.action, fault: sc?.fault ?? null, outcome: sc?.outcome ?? null };
      }),
    }));
    const paidTwice = await Promise.all(paidTwiceRows);

    // Expected outcome per item.
    const expected = (tag: string, jobId: string): ((e: Outcome) => boolean) => {
      if (jobId === jobB.jobId) return (e) => (e.status === "failed" && e.error?.kind === "model_auth") || (e.status === "skipped" && e.error?.kind === "halted");
      if (tag === "a-0003") return (e) => e.status === "failed" && e.error?.kind === "document_corrupt";
      if (tag === "a-0005") return (e) => e.status === "failed" && e.error?.kind === "document_too_large";
      // Or a transient model fault every time, until the item's attempts ran out (maxAttempts, 3).
      return (e) => e.status === "succeeded" || (e.status === "failed" && TRANSIENT_MODEL_KINDS.has(e.error?.kind ?? "") && e.attempts >= jobA.maxAttempts);
    };
    const wrong: { tag: string; status: string; kind: string | null; message: string | null }[] = [];
    for (const { job, entry, tag } of byItem.values()) {
      if (entry && !expected(tag, job.jobId)(entry)) wrong.push({ tag, status: entry.status, kind: entry.error?.kind ?? null, message: entry.error?.message.slice(0, 160) ?? null });
    }
    const outcomeOf = (tags: Iterable<string>) => {
      const counts = new Map<string, number>();
      for (const t of tags) {
        const e = [...byItem.values()].find((v) => v.tag === t)?.entry;
        const label = !e ? "lost" : e.status === "succeeded" ? "succeeded" : `${e.status} ${e.error?.kind}`;
        counts.set(label, (counts.get(label) ?? 0) + 1);
      }
      return [...counts].map(([k, v]) => `${v} ${k}`).join(", ") || "-";
    };

    // Debris: files of an item outside attempts/ that its status does not explain.
    const allKeys = await store.listKeys("");
    let partialDebris = 0;
    const debris: string[] = [];
    for (const job of [jobA, jobB]) {
      for (const key of allKeys.filter((k) => k.startsWith(keys.itemsPrefix(job.jobId)))) {
        const [itemId, ...rest] = key.slice(keys.itemsPrefix(job.jobId).length).split("/");
        const file = rest.join("/");
        if (file.startsWith("attempts/") || file === "result.json") continue;
        const entry = byItem.get(itemId + "@" + job.jobId)?.entry;
        if (entry?.status === "succeeded" && (file === "answer.md" || file === "reasoning.md")) continue;
        partialDebris++;
        debris.push(key);
      }
    }

    // The key: in no S3 object and no output file (run.ts scans the logs).
    const outDir = path.join(dir, "out");
    let keyLeaks = 0;
    const leaks: string[] = [];
    for (const key of allKeys) {
      const bytes = await store.getBytes(key);
      if (bytes && Buffer.from(bytes).includes(apiKey)) (keyLeaks++, leaks.push(`s3://${stack.bucket}/${key}`));
    }
    for (const job of [jobA, jobB]) await mirrorRun(store, job.jobId, outDir).catch((e: unknown) => problems.push(`mirror ${job.jobId}: ${String(e)}`));
    for (const f of await walk(outDir)) if ((await readFile(f)).includes(apiKey)) (keyLeaks++, leaks.push(f));

    const dlqMessages = await queueDepth(stack, stack.dlqUrl);
    const leftInQueue = await queueDepth(stack, stack.queueUrl);
    const peak = peakMinute(sim.calls);
    const natural429 = sim.calls.filter((c) => c.status === 429 && c.fault === null);
    const quotaExceeded = peak.requests > cfg.quota.rpm || peak.tokens > cfg.quota.tpm;

    // --- the matrix --------------------------------------------------------------------------
    const tagsOf = (pred: (c: Simulator["calls"][number]) => boolean) => new Set(sim.calls.filter(pred).map((c) => proxyBySim.get(c.requestId)?.tag).filter((t): t is string => !!t));
    const simKinds: [string, string][] = [
      ["429", "429 limit_requests (RPM)"],
      ["quota", "429 insufficient_quota (TPM)"],
      ["burst", "429 limit_burst_rate (surge)"],
      ["500", "500 internal_error"],
      ["503", "503 ModelUnavailable"],
      ["drop", "stream cut mid-way (socket dropped)"],
    ];
    const faults: Record<string, number> = {};
    const matrix: MatrixRow[] = [];
    for (const [kind, label] of simKinds) {
      const hit = sim.calls.filter((c) => c.fault === kind);
      if (!cfg.simFaults.includes(`${kind}:`) && !cfg.injectFirst.includes(kind)) continue;
      const tags = tagsOf((c) => c.fault === kind);
      faults[label] = hit.length;
      matrix.push({ fault: label, injected: hit.length, itemsAffected: tags.size, outcome: outcomeOf(tags) });
    }
    const slowCalls = proxy.calls.filter((c) => c.action === "slow");
    faults["slow stream into the deadline"] = slowCalls.length;
    matrix.push({ fault: "slow stream into the deadline", injected: slowCalls.length, itemsAffected: new Set(slowCalls.map((c) => c.tag)).size, outcome: outcomeOf(slowCalls.map((c) => c.tag!)) });
    faults["worker SIGKILL mid-stream"] = kills.length;
    matrix.push({ fault: "worker SIGKILL mid-stream", injected: kills.length, itemsAffected: new Set(kills.map((k) => k.tag)).size, outcome: outcomeOf(kills.map((k) => k.tag!)) });
    faults["duplicate delivery at once"] = dupItems.length;
    const dupTags = dupItems.map((i) => i.documents[0]!.source.replace(/\.\w+$/, ""));
    const dupOk = dupTags.map((t) => okByTag.get(t) ?? 0);
    matrix.push({ fault: "duplicate delivery at once", injected: dupItems.length, itemsAffected: dupItems.length, outcome: `${outcomeOf(dupTags)}; successful calls per item: max ${Math.max(0, ...dupOk)}` });
    const awsCounts = new Map<string, number>();
    for (const line of (await readFile(countsFile, "utf8")).split("\n").filter(Boolean)) awsCounts.set(line, (awsCounts.get(line) ?? 0) + 1);
    const markedAttempts = new Map<string, Set<string>>();
    for (const key of allKeys.filter((k) => /\/attempts\/\d+\.json$/.test(k))) {
      const text = new TextDecoder().decode((await store.getBytes(key)) ?? new Uint8Array());
      const m = /longdoc-test-fault (\S+?)\)/.exec(text);
      if (!m) continue;
      const itemId = key.split("/items/")[1]!.split("/")[0]!;
      const tag = [...byItem.values()].find((v) => v.item.id === itemId)?.tag ?? itemId;
      if (!markedAttempts.has(m[1]!)) markedAttempts.set(m[1]!, new Set());
      markedAttempts.get(m[1]!)!.add(tag);
    }
    // An item's result may carry the error too (a failure before any attempt started records none).
    for (const { entry, tag } of byItem.values()) {
      const m = /longdoc-test-fault (\S+?)\)/.exec(entry?.error?.message ?? "");
      if (!m) continue;
      if (!markedAttempts.has(m[1]!)) markedAttempts.set(m[1]!, new Set());
      markedAttempts.get(m[1]!)!.add(tag);
    }
    for (const r of awsSpec.rules) {
      const n = awsCounts.get(r.name) ?? 0;
      faults[r.name] = n;
      const tags = markedAttempts.get(r.name) ?? new Set<string>();
      const outcome = r.insideRetries ? (tags.size ? outcomeOf(tags) : "absorbed by the SDK's retries") : tags.size ? `${outcomeOf(tags)} (items whose attempts or result recorded it)` : "retried through the queue (no item recorded it)";
      matrix.push({ fault: r.name, injected: n, itemsAffected: tags.size, outcome });
    }
    faults["dynamodb conditional-check races (observed)"] = awsCounts.get("dynamodb-conditional-race") ?? 0;
    matrix.push({ fault: "dynamodb conditional-check races (observed)", injected: faults["dynamodb conditional-check races (observed)"]!, itemsAffected: 0, outcome: "lost races handled by the coordinator" });
    faults["poison message"] = cfg.poison;
    matrix.push({ fault: "poison message", injected: cfg.poison, itemsAffected: 0, outcome: `queue left with ${leftInQueue} messages, DLQ ${dlqMessages}` });
    for (const [tag, label] of [["a-0003", "corrupt PDF"], ["a-0005", "oversize document"]] as const) {
      faults[label] = 1;
      matrix.push({ fault: label, injected: 1, itemsAffected: 1, outcome: outcomeOf([tag]) });
    }
    faults["job-level auth failure (second job)"] = jobB.items.length;
    matrix.push({ fault: "job-level auth failure (second job)", injected: proxy.calls.filter((c) => c.action === "auth").length, itemsAffected: jobB.items.length, outcome: `${outcomeOf(bDocs.map((d) => d.source.replace(/\.md$/, "")))}; manifest ${mB?.status}` });
    matrix.push({ fault: "quota enforced by the simulator (not injected)", injected: natural429.length, itemsAffected: 0, outcome: `peak minute ${peak.requests}/${cfg.quota.rpm} requests, ${peak.tokens}/${cfg.quota.tpm} tokens` });

    return {
      items: jobA.items.length + jobB.items.length,
      lost,
      notInManifest,
      duplicateSuccessfulCalls,
      partialDebris,
      dlqMessages,
      keyLeaks,
      wrongOutcomes: wrong.length,
      quotaExceeded,
      throughput: {
        mainMakespanS: mainDoneAt === null ? null : Math.round((mainDoneAt - t0) / 100) / 10,
        mainItemsPerMinute: mainDoneAt === null ? null : Math.round((jobA.items.length / (mainDoneAt - t0)) * 60_000),
        answeredPerMinute: Math.round((proxy.calls.filter((c) => c.delivered).length / ((mainDoneAt ?? Date.now()) - t0)) * 60_000),
        rpm: cfg.quota.rpm,
      },
      faults,
      matrix,
      details: {
        problems,
        wrong: wrong.slice(0, 20),
        paidTwice,
        debris: debris.slice(0, 20),
        leaks,
        leftInQueue,
        natural429: natural429.length,
        natural429ByCode: Object.fromEntries([...new Set(natural429.map((c) => c.errorCode))].map((code) => [code, natural429.filter((c) => c.errorCode === code).length])),
        peakMinute: peak,
        quota: cfg.quota,
        modelRequests: proxy.calls.length,
        stalled,
        finishCounts,
        manifests: { main: mA?.status, auth: mB?.status, mainCounts: mA?.counts, authCounts: mB?.counts },
        kills,
        replacements: replacements.map((r) => ({ pid: r.pid, signal: r.signal, newPid: r.newPid })),
        workers: cfg.workers,
        elapsedS,
      },
      apiKey,
      elapsedS,
    };
  } finally {
    await Promise.all(fleets.map((f) => f.stop().catch(() => undefined)));
    for (const p of fleets.flatMap((f) => f.processes)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await proxy.stop();
    await sim.stop();
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
