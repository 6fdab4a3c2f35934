import { readFile } from "node:fs/promises";
import { getModel, priceFor, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { loadDocument } from "../documents/index.ts";
import { LongdocError, toErrorRecord } from "../errors.ts";
import { expandItems } from "../job/expand.ts";
import type { JobItem } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { resolveLocalDocuments, type ResolveOptions } from "../job/resolve.ts";
import { packDocuments } from "./pack.ts";
import { planCall } from "../model/plan.ts";
import { countTokens } from "../tokens/index.ts";
import { toolRounds } from "../reason/settings.ts";

export interface ItemEstimate {
  id: string;
  documents: { source: string; format: string | null; tokens: number | null }[];
  /** Exact prompt tokens of the call the worker will send. */
  inputTokens: number | null;
  tier: string | null;
  /** What the input alone costs at the tier's price. */
  inputCostUsd: number;
  /** Input plus the most the output can cost (answer cap and thinking budget at the output price). */
  costUsd: number;
  /** Model calls for the item: questions' calls (one per question with `calls: per-question`) × samples. */
  calls: number;
  /** Samples per call (`samples:`); every sample after the first reads the document prefix from the cache. */
  samples: number;
  /** With `tools:`, the most model rounds one sample may take; `costUsd` counts them all (each re-reads the prefix from the cache). */
  toolRounds: number;
  /** Input tokens expected from the context cache: the shared document prefix of every call after the first. */
  cachedTokens: number;
  /** Expected saving from the cache against full input price (hits assumed within the 5-minute TTL). */
  cacheSavingsUsd: number;
  maxOutputTokens: number | null;
  thinkingBudget: number | null;
  truncated: { source: string; tokensCut: number } | null;
  error: { kind: string; message: string } | null;
}

export interface JobEstimate {
  job: string;
  model: string;
  items: ItemEstimate[];
  totals: { inputTokens: number; inputCostUsd: number; costUsd: number; cacheSavingsUsd: number; failing: number };
  maxCostUsd: number | null;
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
export async function estimateJob(spec: JobSpec, jobFile: string, catalog: Catalog, resolve: ResolveOptions = {}): Promise<JobEstimate> {
  const model = getModel(catalog, spec.model);
  if (spec.documents.some((d) => "s3" in d)) {
    throw new LongdocError("usage", `${jobFile}: estimate reads local path: sources; s3 sources are priced when submitted`);
  }
  const local = await resolveLocalDocuments(spec, jobFile, resolve);
  const loaded = new Map<string, LoadedText>();
  // One at a time: a job can hold thousands of documents, and each may be hundreds of pages.
  for (const d of local) {
    try {
      const file = await readFile(d.absolutePath);
      const doc = await loadDocument({ bytes: new Uint8Array(file.buffer, file.byteOffset, file.byteLength), name: d.source }, { maxBytes: spec.limits.maxDocumentBytes });
      loaded.set(d.source, { text: doc.text, format: doc.format, error: null });
    } catch (e) {
      loaded.set(d.source, { text: "", format: null, error: toErrorRecord(e) });
    }
  }
  const itemDocs = local.map((d) => ({ source: d.source, uri: d.absolutePath }));
  const packs =
    spec.packing === "packed"
      ? packDocuments(spec, model, itemDocs.map((doc) => ({ doc, text: loaded.get(doc.source)!.text, unreadable: loaded.get(doc.source)!.error !== null })))
      : undefined;
  return estimateItems(spec, model, expandItems(spec, itemDocs, packs), loaded);
}

/** Refuses a job whose input alone is estimated above `limits.maxCostUsd`. */
export function assertWithinCostCap(spec: JobSpec, estimate: JobEstimate): void {
  const cap = spec.limits.maxCostUsd;
  if (cap === undefined || estimate.totals.inputCostUsd <= cap) return;
  throw new LongdocError(
    "cost_cap",
    `job '${spec.name}': its input alone is estimated at $${estimate.totals.inputCostUsd.toFixed(4)}, over limits.maxCostUsd ($${cap}); run 'longdoc estimate' for the breakdown`,
  );
}

/** Prices items over documents already extracted (the local runner and submit reuse their texts). */
export function estimateItems(spec: JobSpec, model: ModelInfo, jobItems: JobItem[], loaded: Map<string, LoadedText>): JobEstimate {
  const rounds = spec.tools ? toolRounds(spec) : 1;
  const items = jobItems.map((item): ItemEstimate => {
    const docs = item.documents.map((d) => loaded.get(d.source)!);
    const base = {
      id: item.id,
      documents: item.documents.map((d, i) => ({ source: d.source, format: docs[i]!.format, tokens: docs[i]!.error ? null : countTokens(docs[i]!.text) })),
    };
    const broken = docs.find((d) => d.error);
    const empty = { inputTokens: null, tier: null, inputCostUsd: 0, costUsd: 0, calls: 0, samples: spec.samples, toolRounds: rounds, cachedTokens: 0, cacheSavingsUsd: 0, maxOutputTokens: null, thinkingBudget: null, truncated: null };
    if (broken) return { ...base, ...empty, error: broken.error };
    try {
      const texts = item.documents.map((d, i) => ({ source: d.source, text: docs[i]!.text }));
      const questionSets = spec.calls === "per-question" && spec.questions ? spec.questions.map((q) => [q]) : [spec.questions];
      const plans = questionSets.map((qs) => planCall({ ...spec, questions: qs }, model, texts));
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
        inputCost += priceFor(model, { ...usage, outputTokens: 0 }).costUsd;
        // The tool loop stays inside one call's output budget; its extra rounds re-send the input over the cached prefix.
        const extraRound = priceFor(model, { inputTokens: plan.inputTokens, cachedTokens: plan.prefixTokens, cacheType, outputTokens: 0 }).costUsd;
        ceiling += priceFor(model, { ...usage, outputTokens: plan.maxOutputTokens + (plan.thinkingBudget ?? 0) }).costUsd + (rounds - 1) * extraRound;
        full += priceFor(model, { inputTokens: plan.inputTokens, outputTokens: 0, cachedTokens: 0 }).costUsd;
        cachedTokens += cached;
      });
      const first = plans[0]!;
      return {
        ...base,
        inputTokens: calls.reduce((s, p) => s + p.inputTokens, 0),
        tier: priceFor(model, { inputTokens: first.inputTokens, outputTokens: 0, cachedTokens: 0 }).tier,
        inputCostUsd: round6(inputCost),
        costUsd: round6(ceiling),
        calls: calls.length,
        samples: spec.samples,
        toolRounds: rounds,
        cachedTokens,
        cacheSavingsUsd: round6(full - inputCost),
        maxOutputTokens: first.maxOutputTokens,
        thinkingBudget: first.thinkingBudget ?? null,
        truncated: first.truncated,
        error: null,
      };
    } catch (e) {
      return { ...base, ...empty, error: toErrorRecord(e) };
    }
  });
  return {
    job: spec.name,
    model: model.id,
    items,
    totals: {
      inputTokens: items.reduce((s, i) => s + (i.inputTokens ?? 0), 0),
      inputCostUsd: round6(items.reduce((s, i) => s + i.inputCostUsd, 0)),
      costUsd: round6(items.reduce((s, i) => s + i.costUsd, 0)),
      cacheSavingsUsd: round6(items.reduce((s, i) => s + i.cacheSavingsUsd, 0)),
      failing: items.filter((i) => i.error).length,
    },
    maxCostUsd: spec.limits.maxCostUsd ?? null,
  };
}
