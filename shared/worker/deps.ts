import type { S3Client } from "@aws-sdk/client-s3";
import type { Catalog } from "../model/catalog.ts";
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import { createModelClient, type ModelClient } from "../model/client.ts";
import { RateLimiter } from "./rate.ts";
import { deployment } from "../settings.ts";
import { SpendTracker } from "./spend.ts";
import type { WorkerDeps } from "./worker.ts";

export interface WorkerDepsInput {
  s3: S3Client;
  catalog: Catalog;
  log: Log;
  apiKey: string;
  baseURL: string;
  model?: ModelClient;
  /**
   * The share of a job's quota one process may use. Lambda containers do not share memory, so
   * each takes 1/concurrency of the quota; the local runtime runs every worker in one process.
   */
  quotaShare?: (job: JobRecord) => number;
  retry?: WorkerDeps["retry"];
}

export function createWorkerDeps(i: WorkerDepsInput): WorkerDeps {
  const limiters = new Map<string, RateLimiter>();
  const share = i.quotaShare ?? (() => 1);
  return {
    s3: i.s3,
    catalog: i.catalog,
    log: i.log,
    model: i.model ?? createModelClient({ apiKey: i.apiKey, baseURL: i.baseURL }),
    limiterFor(job) {
      let l = limiters.get(job.jobId);
      if (!l) {
        const f = share(job);
        l = new RateLimiter({ rpm: Math.max(1, job.limits.rpm * f), tpm: Math.max(1, job.limits.tpm * f) });
        limiters.set(job.jobId, l);
      }
      return l;
    },
    retry: i.retry ?? { retries: 2, minTimeoutMs: 1000 },
    spend: new SpendTracker(),
    decodeTokensPerSecond: deployment.assumedDecodeTokensPerSecond,
    deadlineMarginMs: deployment.deadlineMarginMs,
  };
}
