import { randomUUID } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Log } from "../log.ts";
import type { Catalog } from "../model/catalog.ts";
import { createModelClient, type ModelClient } from "../model/client.ts";
import type { Coordinator } from "../run/coord.ts";
import type { JobNotifier } from "../run/notify.ts";
import type { Finalizer } from "../run/finalize.ts";
import { deployment } from "../settings.ts";
import type { WorkerDeps, WorkerTiming } from "./context.ts";

/** The task queue, for the visibility changes that make waits happen in SQS. */
export interface QueueDeps {
  sqs: SQSClient;
  queueUrl: string;
}

export interface WorkerDepsInput extends QueueDeps {
  s3: S3Client;
  coord: Coordinator;
  catalog: Catalog;
  log: Log;
  apiKey: string;
  baseURL: string;
  model?: ModelClient;
  /** Names this worker in item claims; a fresh id per container (or local process) by default. */
  owner?: string;
  timing?: Partial<WorkerTiming>;
  notifier?: JobNotifier;
  finalizer?: Finalizer;
  metrics?: WorkerDeps["metrics"];
}

export const defaultTiming: WorkerTiming = {
  decodeTokensPerSecond: deployment.assumedDecodeTokensPerSecond,
  deadlineMarginMs: deployment.deadlineMarginMs,
  leaseMs: deployment.claimLeaseS * 1000,
  maxInProcessWaitMs: deployment.maxInProcessWaitMs,
  backoffBaseMs: deployment.backoffBaseMs,
  backoffCapMs: deployment.backoffCapMs,
};

export function createWorkerDeps(i: WorkerDepsInput): WorkerDeps & QueueDeps {
  return {
    s3: i.s3,
    sqs: i.sqs,
    queueUrl: i.queueUrl,
    coord: i.coord,
    catalog: i.catalog,
    log: i.log,
    owner: i.owner ?? `worker-${process.pid}-${randomUUID().slice(0, 8)}`,
    model: i.model ?? createModelClient({ apiKey: i.apiKey, baseURL: i.baseURL, catalog: i.catalog }),
    timing: { ...defaultTiming, ...i.timing },
    ...(i.notifier && { notifier: i.notifier }),
    ...(i.finalizer && { finalizer: i.finalizer }),
    ...(i.metrics && { metrics: i.metrics }),
  };
}
