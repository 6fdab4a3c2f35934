import type { S3Client } from "@aws-sdk/client-s3";
import type { ModelInfo } from "../model/catalog.ts";
import { assertWithinCostCap, estimateItems, type LoadedText } from "./estimate.ts";
import { expandItems } from "../job/expand.ts";
import type { ItemDocument } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { measureDocuments, packDocuments } from "./pack.ts";
import type { QuotaNeed } from "./quota-need.ts";

/**
 * The packs of a `packing: packed` job, from the documents' sizes (no document is read), and, for
 * local runs only, the cost-cap check, which reads the documents to price their exact tokens.
 * Deployed submits read nothing: the ledger holds the cap during the run, and `longdoc estimate`
 * gives the figure before.
 */
export async function prepareSubmit(
  s3: S3Client,
  spec: JobSpec,
  model: ModelInfo,
  documents: ItemDocument[],
  opts: { checkCostCap: boolean; fallback?: ModelInfo },
): Promise<{ packs?: ItemDocument[][]; quotaNeed?: QuotaNeed }> {
  const packs = spec.packing === "packed" ? packDocuments(spec, model, documents) : undefined;
  if (opts.checkCostCap && (spec.limits.maxCostUsd !== undefined || spec.limits.maxCost !== undefined)) {
    const measured = await measureDocuments(s3, documents, spec);
    const texts = new Map<string, LoadedText>(measured.map((m) => [m.doc.source, { text: m.text, format: m.format, error: m.error }]));
    const estimate = estimateItems(spec, model, expandItems(spec, documents, packs), texts, opts.fallback);
    assertWithinCostCap(spec, estimate);
    // Measured anyway: the exact quota need, not the floor, is checked against the queue's retention.
    const { retentionHours: _r, fits: _f, ...quotaNeed } = estimate.quota;
    return { packs, quotaNeed };
  }
  return { packs };
}
