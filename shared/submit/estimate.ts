import { stat } from "node:fs/promises";
import { checkFallback, costCap, formatCost, getModel, priceFor, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { DEFAULT_MAX_BYTES, loadDocument } from "../documents/index.ts";
import { readDocumentFile } from "../documents/read-file.ts";
import { BATCH_PRICE_FACTOR } from "../batch/support.ts";
import { LongdocError, toErrorRecord } from "../errors.ts";
import { expandItems } from "../job/expand.ts";
import type { ItemDocument, JobItem } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { resolveLocalDocuments, type ResolveOptions } from "../job/resolve.ts";
import { packDocuments } from "./pack.ts";
import { documentTokenCeiling, modelForItem, planCall } from "../model/plan.ts";
import { countTokens } from "../tokens/index.ts";
import { toolRounds } from "../reason/settings.ts";
import { selectItems, type ItemSelection } from "./select.ts";
import { pacingLimits, quotaNeed, retentionHours, type QuotaNeed } from "./quota-need.ts";

export interface ItemEstimate {
  id: string;
  documents: { source: string; format: string | null; tokens: number | null }[];
  /** Exact prompt tokens of the call the worker will send. */
  inputTokens: number | null;
  tier: string | null;
  /** What the input alone costs at the tier's price (in the estimate's `currency`). */
  inputCost: number;
  /** Input plus the most the output can cost (answer cap and thinking budget at the output price). */
  cost: number;
  /** The same figures in USD when the currency is USD; null otherwise (their names are kept from before regions). */
  inputCostUsd: number | null;
  costUsd: number | null;
  /** Model calls for the item: questions' calls (one per question with `calls: per-question`) × samples. */
  calls: number;
  /** Samples per call (`samples:`); every sample after the first reads the document prefix from the cache. */
  samples: number;
  /** With `tools:`, the most model rounds one sample may take; `cost` counts them all (each re-reads the prefix from the cache). */
  toolRounds: number;
  /** Input tokens expected from the context cache: the shared document prefix of every call after the first. */
  cachedTokens: number;
  /** Expected saving from the cache against full input price (hits assumed within the 5-minute TTL). */
  cacheSavings: number;
  cacheSavingsUsd: number | null;
  maxOutputTokens: number | null;
  thinkingBudget: number | null;
  truncated: { source: string; tokensCut: number } | null;
  /** `citations: verify`: the tokens the citation instruction adds to each prompt of the item (counted in inputTokens). */
  citationTokens?: number;
  error: { kind: string; message: string } | null;
  /** Set when the item runs on the job's fallbackModel (its prompt does not fit `model`): the model it is planned and priced on. */
  model?: string;
}

export interface JobEstimate {
  job: string;
  model: string;
  items: ItemEstimate[];
  /** The currency of every cost here, and the pricing region (the endpoint's). */
  currency: string;
  region: string;
  totals: { inputTokens: number; inputCost: number; cost: number; cacheSavings: number; inputCostUsd: number | null; costUsd: number | null; cacheSavingsUsd: number | null; failing: number };
  /** The job's cost cap in `currency`; maxCostUsd the same when that is USD. */
  maxCost: number | null;
  maxCostUsd: number | null;
  /**
   * `mode: batch`: the same calls at the Batch API's price (half the realtime price, no cache
   * discount counted: the input is priced uncached). `totals` stays the realtime price, beside it.
   */
  batch?: { priceFactor: number; inputCost: number; cost: number; inputCostUsd: number | null; costUsd: number | null };
  /** `exact` when longdoc carries the model's tokenizer; else `estimate`, with the margin budgets add (docs/models.md). */
  tokenCounts: { counts: "exact" | "estimate"; tokenizer: string; safetyMargin: number };
  /** How long the job needs the quota, against how long the task queue keeps a waiting task; `fits` false: submit refuses it. */
  quota: QuotaNeed & { retentionHours: number; fits: boolean };
}

/** The estimate's quota need: every call of the items that can run, with what each reserves. */
export function estimateQuota(items: Pick<ItemEstimate, "inputTokens" | "calls" | "maxOutputTokens" | "thinkingBudget" | "error">[], limits: { rpm: number; tpm: number }): JobEstimate["quota"] {
  const runnable = items.filter((i) => !i.error && i.inputTokens !== null);
  const calls = runnable.reduce((s, i) => s + i.calls, 0);
  const reserved = runnable.reduce((s, i) => s + (i.inputTokens ?? 0) + i.calls * ((i.maxOutputTokens ?? 0) + (i.thinkingBudget ?? 0)), 0);
  const need = quotaNeed(calls, reserved, limits);
  return { ...need, retentionHours: retentionHours(), fits: need.hours <= retentionHours() };
}

/** The `*Usd` twins of cost figures: the same numbers in a USD region, null elsewhere. */
function usdTwins<T extends { inputCost: number; cost: number; cacheSavings: number }>(o: T, currency: string) {
  const usd = (n: number) => (currency === "USD" ? n : null);
  return { ...o, inputCostUsd: usd(o.inputCost), costUsd: usd(o.cost), cacheSavingsUsd: usd(o.cacheSavings) };
}

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

/** A document's extracted text (or why it could not be read), keyed by its source. */
export interface LoadedText {
  text: string;
  format: string | null;
  error: { kind: string; message: string } | null;
}

/**
 * Prices a job without calling the model: loads each local document as the worker would, builds
 * the same call with `planCall`, counts its tokens exactly and prices it at its input tier.
 * Items that would fail (unreadable, too long) are listed with their error, not thrown.
 */
export async function estimateJob(spec: JobSpec, jobFile: string, catalog: Catalog, resolve: ResolveOptions = {}, select?: ItemSelection): Promise<JobEstimate> {
  const model = getModel(catalog, spec.model);
  if (spec.documents.some((d) => "s3" in d)) {
    throw new LongdocError("usage", `${jobFile}: estimate reads local path: sources; s3 sources are priced when submitted`);
  }
  const local = await resolveLocalDocuments(spec, jobFile, resolve);
  // Sizes first (what packing goes by), so that --limit and --only read only the chosen items' documents.
  const itemDocs: ItemDocument[] = [];
  for (const d of local) {
    const bytes = await stat(d.absolutePath).then((s) => s.size, () => undefined);
    itemDocs.push({ source: d.source, uri: d.absolutePath, ...(bytes !== undefined && { bytes }), ...(d.encoding && { encoding: d.encoding }) });
  }
  // Packed by size, as submit packs them: the same items, priced exactly.
  const packs = spec.packing === "packed" ? packDocuments(spec, model, itemDocs) : undefined;
  const all = expandItems(spec, itemDocs, packs);
  const items = select ? selectItems(all, select) : all;
  const loaded = new Map<string, LoadedText>();
  const fallback = checkFallback(catalog, spec, model);
  // A document no model of the job can take whole is refused by a lower bound on its tokens, before it is extracted in full.
  const maxTokens = documentTokenCeiling(spec, model, fallback);
  // One at a time: a job can hold thousands of documents, and each may be hundreds of pages.
  for (const d of items.flatMap((i) => i.documents)) {
    if (loaded.has(d.source)) continue;
    try {
      const file = await readDocumentFile(d.uri, spec.limits.maxDocumentBytes ?? DEFAULT_MAX_BYTES, d.source);
      const doc = await loadDocument({ bytes: file, name: d.source }, { maxBytes: spec.limits.maxDocumentBytes, encoding: d.encoding, maxTokens });
      loaded.set(d.source, { text: doc.text, format: doc.format, error: null });
    } catch (e) {
      loaded.set(d.source, { text: "", format: null, error: toErrorRecord(e) });
    }
  }
  return estimateItems(spec, model, items, loaded, fallback);
}

/** Refuses a job whose input alone is estimated above its cost cap (`limits.maxCost` / `maxCostUsd`). */
export function assertWithinCostCap(spec: JobSpec, estimate: JobEstimate): void {
  const cap = estimate.maxCost;
  // A batch job pays the batch price for its input.
  const input = estimate.batch?.inputCost ?? estimate.totals.inputCost;
  if (cap === null || input <= cap) return;
  const field = spec.limits.maxCost !== undefined ? "limits.maxCost" : "limits.maxCostUsd";
  throw new LongdocError(
    "cost_cap",
    `job '${spec.name}': its input alone is estimated at ${formatCost(input, estimate.currency)}${estimate.batch ? " at the batch price" : ""}, over ${field} (${formatCost(cap, estimate.currency, null)}); run 'longdoc estimate' for the breakdown`,
  );
}

/** Prices items over documents already extracted (the local runner and submit reuse their texts). */
export function estimateItems(spec: JobSpec, jobModel: ModelInfo, jobItems: JobItem[], loaded: Map<string, LoadedText>, fallback?: ModelInfo): JobEstimate {
  const model = jobModel;
  const rounds = spec.tools ? toolRounds(spec) : 1;
  const items = jobItems.map((item): ItemEstimate => {
    const docs = item.documents.map((d) => loaded.get(d.source)!);
    const base = {
      id: item.id,
      documents: item.documents.map((d, i) => ({ source: d.source, format: docs[i]!.format, tokens: docs[i]!.error ? null : countTokens(docs[i]!.text) })),
    };
    const broken = docs.find((d) => d.error);
    const empty = { inputTokens: null, tier: null, ...usdTwins({ inputCost: 0, cost: 0, cacheSavings: 0 }, model.currency), calls: 0, samples: spec.samples, toolRounds: rounds, cachedTokens: 0, maxOutputTokens: null, thinkingBudget: null, truncated: null };
    if (broken) return { ...base, ...empty, error: broken.error };
    try {
      const texts = item.documents.map((d, i) => ({ source: d.source, text: docs[i]!.text }));
      const questionSets = spec.calls === "per-question" && spec.questions ? spec.questions.map((q) => [q]) : [spec.questions];
      const specs = questionSets.map((qs) => ({ ...spec, questions: qs }));
      // The item's model: the job's, or its fallbackModel when a call would not fit it; priced at that model's rates.
      const model = modelForItem(specs, jobModel, fallback, texts);
      const plans = specs.map((s) => planCall(s, model, texts));
      let inputCost = 0;
      let ceiling = 0;
      let full = 0;
      let cachedTokens = 0;
      // Each question's call is made `samples` times; the very first call pays for the prefix (and
      // writes an explicit cache block), every later one reads it (hits within the 5-minute TTL).
      const calls = plans.flatMap((plan) => Array.from({ length: spec.samples }, () => plan));
      calls.forEach((plan, n) => {
        const cached = n > 0 ? plan.prefixTokens : 0;
        const written = n === 0 && plan.explicitCache ? plan.prefixTokens : 0;
        const cacheType = plan.explicitCache ? ("ephemeral" as const) : ("implicit" as const);
        const usage = { inputTokens: plan.inputTokens, cachedTokens: cached, cacheWriteTokens: written, cacheType };
        inputCost += priceFor(model, { ...usage, outputTokens: 0 }).cost;
        // The tool loop stays inside one call's output budget; its extra rounds re-send the input over the cached prefix.
        const extraRound = priceFor(model, { inputTokens: plan.inputTokens, cachedTokens: plan.prefixTokens, cacheType, outputTokens: 0 }).cost;
        ceiling += priceFor(model, { ...usage, outputTokens: plan.maxOutputTokens + (plan.thinkingBudget ?? 0) }).cost + (rounds - 1) * extraRound;
        full += priceFor(model, { inputTokens: plan.inputTokens, outputTokens: 0, cachedTokens: 0 }).cost;
        cachedTokens += cached;
      });
      const first = plans[0]!;
      return {
        ...base,
        ...(model !== jobModel ? { model: model.id } : {}),
        inputTokens: calls.reduce((s, p) => s + p.inputTokens, 0),
        tier: priceFor(model, { inputTokens: first.inputTokens, outputTokens: 0, cachedTokens: 0 }).tier,
        ...usdTwins({ inputCost: round6(inputCost), cost: round6(ceiling), cacheSavings: round6(full - inputCost) }, model.currency),
        calls: calls.length,
        samples: spec.samples,
        toolRounds: rounds,
        cachedTokens,
        maxOutputTokens: first.maxOutputTokens,
        thinkingBudget: first.thinkingBudget ?? null,
        truncated: first.truncated,
        ...(spec.citations === "verify" ? { citationTokens: first.citationTokens ?? 0 } : {}),
        error: null,
      };
    } catch (e) {
      return { ...base, ...empty, error: toErrorRecord(e) };
    }
  });
  const cap = costCap(spec, model);
  return {
    job: spec.name,
    model: model.id,
    tokenCounts: { counts: model.countMargin ? "estimate" : "exact", tokenizer: model.tokenizer, safetyMargin: model.countMargin },
    currency: model.currency,
    region: model.region,
    items,
    totals: {
      inputTokens: items.reduce((s, i) => s + (i.inputTokens ?? 0), 0),
      ...usdTwins(
        {
          inputCost: round6(items.reduce((s, i) => s + i.inputCost, 0)),
          cost: round6(items.reduce((s, i) => s + i.cost, 0)),
          cacheSavings: round6(items.reduce((s, i) => s + i.cacheSavings, 0)),
        },
        model.currency,
      ),
      failing: items.filter((i) => i.error).length,
    },
    maxCost: cap,
    maxCostUsd: model.currency === "USD" ? cap : null,
    quota: estimateQuota(items, pacingLimits(spec, model)),
    ...(spec.mode === "batch" ? { batch: atBatchPrice(items, model.currency) } : {}),
  };
}

/** The realtime figures without their cache discount, times the batch price factor. */
function atBatchPrice(items: ItemEstimate[], currency: string): NonNullable<JobEstimate["batch"]> {
  const sum = (f: (i: ItemEstimate) => number) => round6(items.reduce((s, i) => s + f(i), 0) * BATCH_PRICE_FACTOR);
  const inputCost = sum((i) => i.inputCost + i.cacheSavings);
  const cost = sum((i) => i.cost + i.cacheSavings);
  return { priceFactor: BATCH_PRICE_FACTOR, inputCost, cost, inputCostUsd: currency === "USD" ? inputCost : null, costUsd: currency === "USD" ? cost : null };
}
