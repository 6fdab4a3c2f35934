/**
 * Which models and regions the provider's Batch API serves, and what a batch call costs: half the
 * realtime price (docs/qwen-api.md §8). The catalog lists each model's batch regions
 * (`batchRegions`); a job in `mode: batch` on any other model or region is refused before submit.
 */
import { LongdocError } from "../errors.ts";
import { priceFor, type ModelInfo, type PriceUsage } from "../model/catalog.ts";

/** Batch requests are billed at this share of the realtime price. */
export const BATCH_PRICE_FACTOR = 0.5;

/** Refuses `mode: batch` where the provider offers no batch for the model, naming the regions that do. */
export function checkBatchSupport(spec: { name: string; model: string; mode?: string }, model: Pick<ModelInfo, "id" | "region" | "batchRegions">, where: string): void {
  if (spec.mode !== "batch") return;
  const regions = model.batchRegions ?? [];
  if (regions.includes(model.region)) return;
  const offered = regions.length
    ? `its Batch API serves ${model.id} only in ${regions.join(", ")} (set LONGDOC_REGION or QWEN_BASE_URL to that region's endpoint)`
    : `the model catalog lists no region whose Batch API serves ${model.id}`;
  throw new LongdocError("job_invalid", `${where}: mode: batch: the endpoint's region is ${model.region}, but ${offered}; or use mode: realtime`);
}

/** A batch call's cost: its realtime price at its tier, times BATCH_PRICE_FACTOR. */
export function batchPriceFor(model: ModelInfo, usage: PriceUsage): number {
  return round(priceFor(model, usage).cost * BATCH_PRICE_FACTOR);
}

const round = (n: number) => Number(n.toFixed(10));
