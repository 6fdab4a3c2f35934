import type { S3Client } from "@aws-sdk/client-s3";
import type { ModelInfo } from "../model/catalog.ts";
import { assertWithinCostCap, estimateItems, type LoadedText } from "./estimate.ts";
import { expandItems } from "../job/expand.ts";
import type { ItemDocument } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { measureDocuments, packDocuments } from "./pack.ts";

/**
 * What submit needs to know about the documents' contents, read only when the job needs it:
 * packs for `packing: packed`, and, for local runs, the estimate a `limits.maxCostUsd` is
 * checked against. Deployed submits read no document for the cap: the ledger holds it during
 * the run, and `longdoc estimate` gives the figure before.
 */
export async function prepareSubmit(
  s3: S3Client,
  spec: JobSpec,
  model: ModelInfo,
  documents: ItemDocument[],
  opts: { checkCostCap: boolean },
): Promise<{ packs?: ItemDocument[][] }> {
  const checkCap = opts.checkCostCap && (spec.limits.maxCostUsd !== undefined || spec.limits.maxCost !== undefined);
  if (spec.packing !== "packed" && !checkCap) return {};
  const measured = await measureDocuments(s3, documents, spec);
  const packs = spec.packing === "packed" ? packDocuments(spec, model, measured) : undefined;
  if (checkCap) {
    const texts = new Map<string, LoadedText>(measured.map((m) => [m.doc.source, { text: m.text, format: m.format ?? null, error: m.error ?? null }]));
    assertWithinCostCap(spec, estimateItems(spec, model, expandItems(spec, documents, packs), texts));
  }
  return { packs };
}
