import type { WorkerTiming } from "../worker/context.ts";

/** What the fleet hands each worker process (in LONGDOC_WORKER_CONFIG; the API key travels in its own variable). */
export interface WorkerConfig {
  index: number;
  endpoint: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
  finalizeUrl: string;
  finalizeArn: string;
  dynamoEndpoint: string;
  table: string;
  batchSize: number;
  pollWaitS: number;
  functionTimeoutMs: number;
  /** One process of the fleet also drains the dead-letter queue and runs the finalizer (the finalize queue). */
  deadLetters: boolean;
  noModel: boolean;
  timing: Partial<WorkerTiming>;
  /** "shared" (default): the account quota is paced in the coordination table. "fixed-share": each of the `processes` keeps quota/processes in its own memory (the baseline, shared/local/fixed-share-quota.ts). */
  quotaMode?: QuotaMode;
  /** The fleet's process count (the N of a fixed share). */
  processes?: number;
}

export type QuotaMode = "shared" | "fixed-share";

export function parseWorkerConfig(raw: string | undefined): WorkerConfig {
  if (!raw) throw new Error("LONGDOC_WORKER_CONFIG is not set: this file is started by the local fleet, not by hand");
  return JSON.parse(raw) as WorkerConfig;
}
