import { keys, type ObjectStore } from "./store.ts";
import type { ErrorCode } from "../errors.ts";
import type { JobRecord } from "../job/record.ts";
import { addUsage, zeroUsage, type Usage } from "../model/usage.ts";
import { summariseCitations, type CitationsSummary } from "../citations/gate.ts";
import type { CitationsResult } from "../citations/index.ts";

export type ItemStatus = "succeeded" | "failed" | "skipped";
/** `interrupted` is never written: status reads it off a local run whose job is `running` with no live process on its state. */
export type RunStatus = "succeeded" | "partial" | "failed" | "halted" | "cancelled" | "running" | "interrupted";

/** runs/<jobId>/items/<itemId>/result.json: written once, last, when an item ends. */
export interface ItemResult {
  version: 1;
  id: string;
  status: ItemStatus;
  attempts: number;
  /** Deliveries of the item's task that claimed it (waits for quota included). */
  deliveries?: number;
  /** `mode: batch` jobs: `batch` when the provider's batch answered every call, `realtime` when any call ran realtime. */
  mode?: "realtime" | "batch";
  /** Why a batch job's item made realtime calls (a line over the per-line limit, a line the batch did not answer). */
  modeReason?: string;
  documents: { source: string; format?: string; bytes?: number; chars?: number; tokens?: number; sha256?: string }[];
  error: { kind: ErrorCode; message: string } | null;
  /** Every attempt's calls, the failed ones included. */
  usage: Usage;
  /** What the item cost, in `currency` (the pricing region's). */
  cost: number;
  currency: string;
  /** The same cost in USD when the currency is USD; null otherwise (the name is kept from version 1). */
  costUsd: number | null;
  /** Part of `usage` was counted from the text of calls cut off before the provider's usage arrived (input taken as uncached). */
  usageEstimated?: boolean;
  /** What the context cache saved on this item, against full input price (`cacheSavings` in `currency`; the Usd twin null outside USD). */
  cacheSavings?: number;
  cacheSavingsUsd?: number | null;
  tier: string | null;
  model: string;
  /** The last call's finish_reason (kept for compatibility; `finishReasons` has every call's). */
  finishReason: string | null;
  /** One finish_reason per model call of the item, in call order (a JSON repair call included). */
  finishReasons?: (string | null)[];
  /** True when a call's answer hit the output cap (finish_reason "length") and the job kept it (`output.onTruncated: keep`); an item that did not keep it failed `output_truncated`. */
  answerTruncated?: boolean;
  /** JSON jobs: the first answer failed the schema and one repair call produced a valid one. */
  repaired?: boolean;
  /** JSON jobs: an answer that never validated, kept at items/<itemId>/answer.invalid.json (answer.json only ever holds a valid document). */
  invalidAnswer?: string | null;
  requestId: string | null;
  /** Path of the answer; null for JSON items whose answer never validated (see invalidAnswer). */
  answer: string | null;
  /** Path of reasoning.md; null when the model produced no reasoning text (thinking off). */
  reasoning: string | null;
  /** Set when the job's `truncate: middle` cut a document to make it fit. */
  truncated?: { source: string; tokensCut: number } | null;
  /** Packed items: each document's share of the answer (null where the model gave none). */
  documentAnswers?: { source: string; answer: string | null }[] | null;
  /** `samples:` k calls per question; agreement 0..1 (the lowest over the item's questions); tool calls run. */
  samples?: number;
  agreement?: number;
  toolCalls?: number;
  /** Per sampled call: its agreement, per-field agreement (JSON), ties, disagreements with every group, the kept sample (text). */
  agreementDetail?: {
    question: string | null;
    agreement: number;
    fields?: { path: string; agreement: number }[];
    ties: string[];
    disagreements: { path: string; groups: { value: unknown; samples: number[] }[] }[];
    unusable?: number[];
    chosen?: number;
    /** `judge: true`: the judging call's pick (1-based) and why, or why it made none. */
    judge?: { chosen: number; why: string } | { error: string };
    /** Samples the job's cost cap kept from being sent. */
    unsent?: number;
  }[];
  /** items/<itemId>/trace.json: every sample's rounds and tool calls (code and output) in order. */
  trace?: string;
  /** `citations: verify`: every quote of the answer, checked against the page or sheet it names (shared/citations). */
  citations?: CitationsResult;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

export interface ManifestItem {
  id: string;
  /** Set when the item ran on another model than the job's (its fallbackModel). */
  model?: string;
  documents: string[];
  status: ItemStatus | "queued";
  attempts: number;
  deliveries?: number;
  mode?: "realtime" | "batch";
  error: { kind: string; message: string } | null;
  usage: Usage;
  /** In the manifest's `currency`; the Usd twins are the same figures in a USD region, null elsewhere. */
  cost: number;
  costUsd: number | null;
  cacheSavings: number;
  cacheSavingsUsd: number | null;
  answer: string | null;
  reasoning: string | null;
  /** The last call's finish_reason, and every call's. */
  finishReason?: string | null;
  finishReasons?: (string | null)[];
  /** The answer hit the output cap and was kept (`output.onTruncated: keep`). */
  answerTruncated?: boolean;
  /** The contract's name for the same: true when the answer was cut at the cap and kept. (result.json keeps `answerTruncated`, as its `truncated` describes `truncate: middle`.) */
  truncated?: boolean;
  /** A JSON answer was fixed by the one repair call. */
  repaired?: boolean;
  invalidAnswer?: string | null;
  documentAnswers?: { source: string; answer: string | null }[];
  /** Sampled items: k, agreement 0..1 and per field, tool calls run. */
  samples?: number;
  agreement?: number;
  agreementByField?: { path: string; agreement: number }[];
  toolCalls?: number;
  /** `citations: verify`: the answer's citation score, supported quotes / all quotes (0..1). */
  citationScore?: number;
}

export interface Manifest {
  version: 1;
  jobId: string;
  job: string;
  model: string;
  status: RunStatus;
  counts: { total: number; succeeded: number; failed: number; skipped: number };
  /** Items whose answer hit the output cap (finish_reason "length"): failed output_truncated, or kept with answerTruncated. */
  truncatedItems?: number;
  usage: Usage;
  /** The currency of every cost in the manifest (the pricing region's: USD for Singapore, CNY for Beijing). */
  currency: string;
  cost: number;
  cacheSavings: number;
  /** The same figures in USD when `currency` is USD; null otherwise (the names are kept from version 1). */
  costUsd: number | null;
  cacheSavingsUsd: number | null;
  startedAt: string;
  finishedAt: string | null;
  /** `citations: verify`: the checked quotes of the finished items, summed. */
  citations?: CitationsSummary;
  items: ManifestItem[];
}

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

/** The result of an item that ended without a model call: skipped, or failed before one was made. */
export function resultWithoutCall(
  job: JobRecord,
  itemId: string,
  o: { status: ItemStatus; attempts: number; error: { kind: ErrorCode; message: string }; at: string },
): ItemResult {
  const item = job.items.find((i) => i.id === itemId);
  return {
    version: 1,
    id: itemId,
    status: o.status,
    attempts: o.attempts,
    documents: (item?.documents ?? []).map((d) => ({ source: d.source })),
    error: o.error,
    usage: zeroUsage(),
    cost: 0,
    currency: job.currency ?? "USD",
    costUsd: (job.currency ?? "USD") === "USD" ? 0 : null,
    tier: null,
    model: job.model,
    finishReason: null,
    finishReasons: [],
    requestId: null,
    answer: null,
    reasoning: null,
    startedAt: o.at,
    finishedAt: o.at,
    durationMs: 0,
  };
}

/**
 * The manifest is a pure function of the job record and the item results, so any worker can
 * rebuild it and every rebuild agrees: no read-modify-write of a shared counter.
 */
export function buildManifest(job: JobRecord, results: Map<string, ItemResult>, control: { halted?: boolean; cancelled?: boolean } = {}): Manifest {
  const currency = job.currency ?? "USD";
  // A figure and its version-1 twin: `cost` and `costUsd` (the same number in USD, null in any other currency).
  const twins = <K extends "cost" | "cacheSavings">(name: K, value: number) =>
    ({ [name]: value, [`${name}Usd`]: currency === "USD" ? value : null }) as Record<K, number> & Record<`${K}Usd`, number | null>;
  const items: ManifestItem[] = job.items.map((item) => {
    const r = results.get(item.id);
    return {
      id: item.id,
      ...(r?.model && r.model !== job.model ? { model: r.model } : {}),
      documents: item.documents.map((d) => d.source),
      status: r?.status ?? "queued",
      attempts: r?.attempts ?? 0,
      ...(r?.deliveries !== undefined ? { deliveries: r.deliveries } : {}),
      ...(r?.mode ? { mode: r.mode } : {}),
      error: r?.error ?? null,
      usage: r?.usage ?? zeroUsage(),
      ...twins("cost", round6(r?.cost ?? 0)),
      ...twins("cacheSavings", round6(r?.cacheSavings ?? 0)),
      answer: r?.answer ?? null,
      reasoning: r?.reasoning ?? null,
      finishReason: r?.finishReason ?? null,
      finishReasons: r?.finishReasons ?? (r?.finishReason ? [r.finishReason] : []),
      ...(r?.answerTruncated ? { answerTruncated: true, truncated: true } : {}),
      ...(r?.repaired ? { repaired: true } : {}),
      ...(r?.invalidAnswer ? { invalidAnswer: r.invalidAnswer } : {}),
      ...(r?.documentAnswers ? { documentAnswers: r.documentAnswers } : {}),
      ...(r?.samples !== undefined ? { samples: r.samples, agreement: r.agreement, toolCalls: r.toolCalls ?? 0 } : {}),
      ...(r?.citations ? { citationScore: r.citations.score } : {}),
      ...(r?.agreementDetail?.some((d) => d.fields) ? { agreementByField: r.agreementDetail.flatMap((d) => (d.fields ?? []).map((f) => ({ ...f, path: d.question ? `${d.question}:${f.path}` : f.path }))) } : {}),
    };
  });
  const count = (s: ItemStatus) => items.filter((i) => i.status === s).length;
  const counts = { total: items.length, succeeded: count("succeeded"), failed: count("failed"), skipped: count("skipped") };
  const done = counts.succeeded + counts.failed + counts.skipped === counts.total;
  const finishedAt = done ? [...results.values()].map((r) => r.finishedAt).sort().pop() ?? job.submittedAt : null;
  const citations = summariseCitations([...results.values()].flatMap((r) => (r.citations ? [{ citations: r.citations, ungrounded: r.error?.kind === "ungrounded" }] : [])));
  return {
    version: 1,
    jobId: job.jobId,
    job: job.name,
    model: job.model,
    status: !done ? "running" : control.halted ? "halted" : control.cancelled ? "cancelled" : runStatus(counts),
    counts,
    truncatedItems: items.filter((i) => i.answerTruncated || i.error?.kind === "output_truncated").length,
    usage: items.reduce((u, i) => addUsage(u, i.usage), zeroUsage()),
    currency,
    ...twins("cost", round6(items.reduce((c, i) => c + i.cost, 0))),
    ...twins("cacheSavings", round6(items.reduce((c, i) => c + i.cacheSavings, 0))),
    startedAt: job.submittedAt,
    finishedAt,
    ...(citations ? { citations } : {}),
    items,
  };
}

function runStatus(c: Manifest["counts"]): RunStatus {
  if (c.succeeded === c.total) return "succeeded";
  if (c.succeeded === 0) return "failed";
  return "partial";
}

export const initialManifest = (job: JobRecord) => buildManifest(job, new Map());

/** The summary line of a run: the manifest without its items. */
export function summary(m: Manifest): Omit<Manifest, "items"> {
  const { items: _items, ...rest } = m;
  return rest;
}

const RESULT_SUFFIX = "/result.json";

/** Item ids that have a result, from one listing of the items prefix. */
export async function finishedItemIds(store: ObjectStore, jobId: string): Promise<Set<string>> {
  const prefix = keys.itemsPrefix(jobId);
  const ids = new Set<string>();
  for (const key of await store.listKeys(prefix)) {
    const rest = key.slice(prefix.length);
    if (rest.endsWith(RESULT_SUFFIX) && !rest.slice(0, -RESULT_SUFFIX.length).includes("/")) ids.add(rest.slice(0, -RESULT_SUFFIX.length));
  }
  return ids;
}

/** The job's manifest as its results and halt/cancel markers say now. */
export async function currentManifest(store: ObjectStore, job: JobRecord, results?: Map<string, ItemResult>): Promise<Manifest> {
  const r = results ?? (await readResults(store, job));
  const [halted, cancelled] = await Promise.all([store.exists(keys.halt(job.jobId)), store.exists(keys.cancel(job.jobId))]);
  return buildManifest(job, r, { halted, cancelled });
}

/** The results of the job's finished items (32 reads at a time: jobs hold thousands of items). */
export async function readResults(store: ObjectStore, job: JobRecord, finished?: Set<string>): Promise<Map<string, ItemResult>> {
  const done = finished ?? (await finishedItemIds(store, job.jobId));
  const results = new Map<string, ItemResult>();
  await inBatches(
    job.items.filter((i) => done.has(i.id)),
    32,
    async (item) => {
      const r = await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json"));
      if (r) results.set(item.id, r);
    },
  );
  return results;
}

/** Runs `fn` over `list` with at most `size` calls in flight: a slow call holds up only its own slot. */
export async function inBatches<T>(list: T[], size: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const slot = async () => {
    while (next < list.length) await fn(list[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(size, list.length) }, slot));
}
