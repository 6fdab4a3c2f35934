/**
 * What `longdoc ui` shows of one job, read from the store as `status` reads it: one listing of
 * the job's items, then only the files not read yet (a result.json and an ended attempt's
 * record are written once and never change, so a cache keeps them across polls).
 */
import type { JobRecord } from "../job/record.ts";
import type { AttemptRecord } from "./attempt-record.ts";
import { buildManifest, inBatches, type ItemResult } from "./manifest.ts";
import { runPlots, quotaOverTime, type CallPoint, type Plot } from "./plots.ts";
import { computeProgress, readJob, type RunProgress } from "./progress.ts";
import { keys, type ObjectStore } from "./store.ts";

export interface JobViewCache {
  job?: JobRecord;
  results: Map<string, ItemResult>;
  /** Ended attempts by key (items/<item>/attempts/<n>.json). */
  attempts: Map<string, AttemptRecord & { itemId: string }>;
}

export const newJobViewCache = (): JobViewCache => ({ results: new Map(), attempts: new Map() });

export interface ItemRow {
  id: string;
  documents: string[];
  status: string;
  /** Queued with a failed attempt behind it: waiting for another delivery. */
  retrying: boolean;
  attempts: number;
  deliveries: number | null;
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  cachedTokens: number;
  cost: number;
  errorKind: string | null;
  agreement: number | null;
  citationScore: number | null;
  durationMs: number | null;
}

/** Errors of one kind: items that ended with it, attempts that failed with it, and the distinct words the provider (or longdoc) used. */
export interface ErrorGroup {
  kind: string;
  items: number;
  attempts: number;
  messages: { text: string; count: number; status?: number; providerCode?: string }[];
}

export interface JobView {
  progress: RunProgress;
  items: ItemRow[];
  errors: ErrorGroup[];
  plots: Plot[];
}

const ATTEMPT = /^(\d+)\.json$/;

/** Reads what changed since the last poll and returns the whole view. */
export async function readJobView(store: ObjectStore, jobId: string, cache: JobViewCache, now = Date.now()): Promise<JobView> {
  const job = (cache.job ??= await readJob(store, jobId));
  const prefix = keys.itemsPrefix(jobId);
  const known = new Set(job.items.map((i) => i.id));
  const newResults: string[] = [];
  const newAttempts: { key: string; itemId: string }[] = [];
  const attempted = new Set<string>();
  for (const key of await store.listKeys(prefix)) {
    const [itemId, file, ...rest] = key.slice(prefix.length).split("/");
    if (!itemId || !known.has(itemId)) continue;
    if (file === "result.json" && rest.length === 0) {
      if (!cache.results.has(itemId)) newResults.push(itemId);
    } else if (file === "attempts" && rest.length === 1 && ATTEMPT.test(rest[0]!)) {
      attempted.add(itemId);
      if (!cache.attempts.has(key)) newAttempts.push({ key, itemId });
    }
  }
  await inBatches(newResults, 16, async (id) => {
    const r = await store.getJson<ItemResult>(keys.item(jobId, id, "result.json"));
    if (r) cache.results.set(id, r);
  });
  await inBatches(newAttempts, 16, async ({ key, itemId }) => {
    const a = await store.getJson<AttemptRecord>(key);
    if (a) cache.attempts.set(key, { ...a, itemId });
  });
  const [halted, cancelled] = await Promise.all([store.exists(keys.halt(jobId)), store.exists(keys.cancel(jobId))]);
  const progress = computeProgress({ job, results: cache.results, attempted, halted, cancelled, now });
  return { progress, items: itemRows(job, cache.results, attempted), errors: errorGroups(cache.results, [...cache.attempts.values()]), plots: jobPlots(job, cache) };
}

function itemRows(job: JobRecord, results: Map<string, ItemResult>, attempted: Set<string>): ItemRow[] {
  const m = buildManifest(job, results);
  return m.items.map((i) => ({
    id: i.id,
    documents: i.documents,
    status: i.status,
    retrying: i.status === "queued" && attempted.has(i.id),
    attempts: i.attempts,
    deliveries: i.deliveries ?? null,
    inputTokens: i.usage.inputTokens,
    outputTokens: i.usage.outputTokens,
    reasoningTokens: i.usage.reasoningTokens,
    cachedTokens: i.usage.cachedTokens,
    cost: i.cost,
    errorKind: i.error?.kind ?? null,
    agreement: i.agreement ?? null,
    citationScore: i.citationScore ?? null,
    durationMs: results.get(i.id)?.durationMs ?? null,
  }));
}

/** At most this many distinct messages per kind: the same refusal repeated is one line with a count. */
const MESSAGES_PER_KIND = 5;

export function errorGroups(results: Map<string, ItemResult>, attempts: AttemptRecord[]): ErrorGroup[] {
  const groups = new Map<string, { items: number; attempts: number; messages: Map<string, ErrorGroup["messages"][number]> }>();
  const group = (kind: string) => {
    let g = groups.get(kind);
    if (!g) groups.set(kind, (g = { items: 0, attempts: 0, messages: new Map() }));
    return g;
  };
  const say = (g: ReturnType<typeof group>, e: { message: string; status?: number; providerCode?: string }) => {
    const seen = g.messages.get(e.message);
    if (seen) seen.count++;
    else g.messages.set(e.message, { text: e.message, count: 1, ...(e.status ? { status: e.status } : {}), ...(e.providerCode ? { providerCode: e.providerCode } : {}) });
  };
  for (const a of attempts) {
    if (!a.error) continue;
    const g = group(a.error.kind);
    g.attempts++;
    say(g, a.error);
  }
  for (const r of results.values()) {
    if (!r.error) continue;
    const g = group(r.error.kind);
    g.items++;
    // An item's final error usually repeats its last attempt's words: count it once.
    if (!g.messages.has(r.error.message)) say(g, r.error);
  }
  return [...groups.entries()]
    .map(([kind, g]) => ({ kind, items: g.items, attempts: g.attempts, messages: [...g.messages.values()].sort((a, b) => b.count - a.count).slice(0, MESSAGES_PER_KIND) }))
    .sort((a, b) => b.items + b.attempts - (a.items + a.attempts) || a.kind.localeCompare(b.kind));
}

/** Every call the run's ended attempts made: when it started and the tokens it used. */
export function callPoints(attempts: Iterable<AttemptRecord>): CallPoint[] {
  const out: CallPoint[] = [];
  for (const a of attempts) for (const c of a.calls) out.push({ at: Date.parse(c.startedAt), tokens: c.usage.inputTokens + c.usage.outputTokens });
  return out;
}

function jobPlots(job: JobRecord, cache: JobViewCache): Plot[] {
  const quota = quotaOverTime(job, callPoints(cache.attempts.values()));
  return [...runPlots(job, [...cache.results.values()]), quota.rpm, quota.tpm];
}

/** Texts longer than this are cut in the item's view (the files hold the whole text). */
export const ITEM_TEXT_LIMIT = 200_000;

export interface ItemDetail {
  id: string;
  documents: string[];
  result: ItemResult | null;
  answer: { text: string; cut: boolean; path: string } | null;
  reasoning: { text: string; cut: boolean; path: string } | null;
  attempts: AttemptRecord[];
}

/** One item: its result, answer and reasoning texts, and every ended attempt's record. */
export async function readItemDetail(store: ObjectStore, job: JobRecord, itemId: string, cache?: JobViewCache): Promise<ItemDetail | undefined> {
  const item = job.items.find((i) => i.id === itemId);
  if (!item) return undefined;
  const result = cache?.results.get(itemId) ?? (await store.getJson<ItemResult>(keys.item(job.jobId, itemId, "result.json"))) ?? null;
  const text = async (rel: string | null | undefined) => {
    if (!rel) return null;
    const bytes = await store.getBytes(`${keys.run(job.jobId)}${rel}`);
    if (!bytes) return null;
    const t = new TextDecoder().decode(bytes);
    return { text: t.slice(0, ITEM_TEXT_LIMIT), cut: t.length > ITEM_TEXT_LIMIT, path: rel };
  };
  const attemptsPrefix = keys.item(job.jobId, itemId, "attempts/");
  const attemptKeys = (await store.listKeys(attemptsPrefix)).filter((k) => ATTEMPT.test(k.slice(attemptsPrefix.length)));
  const attempts = (await Promise.all(attemptKeys.map((k) => cache?.attempts.get(k) ?? store.getJson<AttemptRecord>(k)))).filter((a): a is AttemptRecord => a !== undefined);
  attempts.sort((a, b) => a.attempt - b.attempt);
  const [answer, reasoning] = await Promise.all([text(result?.answer ?? result?.invalidAnswer), text(result?.reasoning)]);
  return { id: itemId, documents: item.documents.map((d) => d.source), result, answer, reasoning, attempts };
}
