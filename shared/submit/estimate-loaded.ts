import type { ResolveOptions } from "../job/resolve.ts";
import { estimateBatch } from "./batch.ts";
import { estimateJob, type JobEstimate } from "./estimate.ts";
import type { LoadedJob } from "./load.ts";

/** `longdoc estimate` of a loaded job or batch file, with this run's model, cost cap and item selection. */
export function estimateLoaded(loaded: LoadedJob, resolve: ResolveOptions = {}): Promise<JobEstimate> {
  if (loaded.batch) return Promise.resolve(estimateBatch({ spec: loaded.spec, model: loaded.model, batch: loaded.batch }));
  return estimateJob(loaded.spec, loaded.jobFile, loaded.catalog, resolve, loaded.select);
}
