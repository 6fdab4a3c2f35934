import { readFile } from "node:fs/promises";
import { getModel, priceFor, type Catalog } from "./catalog.ts";
import { loadDocument } from "./documents/index.ts";
import { LongdocError, toErrorRecord } from "./errors.ts";
import { expandItems } from "./job/expand.ts";
import type { JobSpec } from "./job/schema.ts";
import { resolveLocalDocuments } from "./job/resolve.ts";
import { packDocuments } from "./pack.ts";
import { planCall } from "./plan.ts";
import { countTokens } from "./tokens/index.ts";

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
  maxOutputTokens: number | null;
  thinkingBudget: number | null;
  truncated: { source: string; tokensCut: number } | null;
  error: { kind: string; message: string } | null;
}

export interface JobEstimate {
  job: string;
  model: string;
  items: ItemEstimate[];
  totals: { inputTokens: number; inputCostUsd: number; costUsd: number; failing: number };
  maxCostUsd: number | null;
}

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

/**
 * Prices a job without calling the model: loads each local document as the worker would, builds
 * the same call with `planCall`, counts its tokens exactly and prices it at its input tier.
 * Items that would fail (unreadable, too long) are listed with their error, not thrown.
 */
export async function estimateJob(spec: JobSpec, jobFile: string, catalog: Catalog): Promise<JobEstimate> {
  const model = getModel(catalog, spec.model);
  if (spec.documents.some((d) => "s3" in d)) {
    throw new LongdocError("usage", `${jobFile}: estimate reads local path: sources; s3 sources are priced when submitted`);
  }
  const local = await resolveLocalDocuments(spec, jobFile);
  type Loaded = { text: string; format: string | null; tokens: number | null; error: { kind: string; message: string } | null };
  const loaded = new Map<string, Loaded>(
    await Promise.all(
      local.map(async (d): Promise<[string, Loaded]> => {
        try {
          const doc = await loadDocument({ bytes: await readFile(d.absolutePath), name: d.source }, { maxBytes: spec.limits.maxDocumentBytes });
          return [d.source, { text: doc.text, format: doc.format, tokens: countTokens(doc.text), error: null }];
        } catch (e) {
          return [d.source, { text: "", format: null, tokens: null, error: toErrorRecord(e) }];
        }
      }),
    ),
  );
  const itemDocs = local.map((d) => ({ source: d.source, uri: d.absolutePath }));
  const packs =
    spec.packing === "packed"
      ? packDocuments(spec, model, itemDocs.map((doc) => ({ doc, text: loaded.get(doc.source)!.text, unreadable: loaded.get(doc.source)!.error !== null })))
      : undefined;
  const items = expandItems(spec, itemDocs, packs).map((item): ItemEstimate => {
    const docs = item.documents.map((d) => loaded.get(d.source)!);
    const base = {
      id: item.id,
      documents: item.documents.map((d, i) => ({ source: d.source, format: docs[i]!.format, tokens: docs[i]!.tokens })),
    };
    const broken = docs.find((d) => d.error);
    const empty = { inputTokens: null, tier: null, inputCostUsd: 0, costUsd: 0, maxOutputTokens: null, thinkingBudget: null, truncated: null };
    if (broken) return { ...base, ...empty, error: broken.error };
    try {
      const plan = planCall(spec, model, item.documents.map((d, i) => ({ source: d.source, text: docs[i]!.text })));
      const input = priceFor(model, { inputTokens: plan.inputTokens, outputTokens: 0, cachedTokens: 0 });
      const ceiling = priceFor(model, { inputTokens: plan.inputTokens, outputTokens: plan.maxOutputTokens + (plan.thinkingBudget ?? 0), cachedTokens: 0 });
      return {
        ...base,
        inputTokens: plan.inputTokens,
        tier: input.tier,
        inputCostUsd: round6(input.costUsd),
        costUsd: round6(ceiling.costUsd),
        maxOutputTokens: plan.maxOutputTokens,
        thinkingBudget: plan.thinkingBudget ?? null,
        truncated: plan.truncated,
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
      failing: items.filter((i) => i.error).length,
    },
    maxCostUsd: spec.limits.maxCostUsd ?? null,
  };
}
