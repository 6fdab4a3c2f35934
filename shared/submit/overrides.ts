import { LongdocError } from "../errors.ts";
import { getModel } from "../model/catalog.ts";
import type { LoadedJob } from "./load.ts";
import { selectItems, type ItemSelection, type JobOverrides, type RecordedOverrides } from "./select.ts";

/** The loaded job as this run sees it: model and cost cap replaced, batch lines selected, the item selection kept for submit and estimate. */
export function applyOverrides(loaded: LoadedJob, o: JobOverrides): LoadedJob {
  const recorded: RecordedOverrides = {};
  let { spec, model, batch } = loaded;
  if (o.model !== undefined && o.model !== spec.model) {
    model = getModel(loaded.catalog, o.model);
    recorded.model = { job: spec.model, run: o.model };
    spec = { ...spec, model: o.model };
  }
  if (o.maxCost !== undefined) {
    if (!(o.maxCost > 0)) throw new LongdocError("usage", `--max-cost must be a positive number, got ${o.maxCost}`);
    const { maxCostUsd, maxCost, ...limits } = spec.limits;
    recorded.maxCost = { job: maxCost ?? maxCostUsd ?? null, run: o.maxCost };
    spec = { ...spec, limits: { ...limits, maxCost: o.maxCost } };
  }
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) throw new LongdocError("usage", `--limit must be a positive whole number, got ${o.limit}`);
  const select: ItemSelection | undefined = o.limit !== undefined || o.only?.length ? { ...(o.limit !== undefined && { limit: o.limit }), ...(o.only?.length && { only: o.only }) } : undefined;
  if (select) Object.assign(recorded, select);
  if (batch && select) {
    // A batch file's items are its lines, known now: select them before anything is uploaded.
    const kept = selectItems(batch.requests.map((r) => ({ id: r.customId, documents: [] })), select);
    const ids = new Set(kept.map((i) => i.id));
    batch = { ...batch, spec, requests: batch.requests.filter((r) => ids.has(r.customId)) };
  } else if (batch) batch = { ...batch, spec };
  const changed = Object.keys(recorded).length > 0;
  return { ...loaded, spec, model, ...(batch && { batch }), ...(select && !batch && { select }), ...(changed && { overrides: recorded }) };
}
