// What a worker is given: its clients and clocks (WorkerDeps, WorkerTiming) and, per delivery,
// the task's context. Apart from worker.ts so the modules it calls can name them without importing it.
import type { S3Client } from "@aws-sdk/client-s3";
import type { EmfRecord } from "../metrics/emf.ts";
import type { Catalog } from "../model/catalog.ts";
import type { ModelClient } from "../model/client.ts";
import type { Coordinator } from "../run/coord.ts";
import type { JobNotifier } from "../run/notify.ts";
import type { Finalizer } from "../run/finalize.ts";
import type { Log } from "../log.ts";
import type { TraceFlush } from "./attempt.ts";

export interface WorkerDeps {
  s3: S3Client;
  model: ModelClient;
  catalog: Catalog;
  /** Shared by every worker of every job: account quota, item claims, cost ledger, finish counter. */
  coord: Coordinator;
  /** Who this worker is in claims (container or process id); a lease names its owner. */
  owner: string;
  log: Log;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  timing: WorkerTiming;
  /** Tells that a job ended (topic, webhook) when this worker writes its final manifest. */
  notifier?: JobNotifier;
  /** Ends a job whose last item this worker counted (the finalize queue); without it the worker finalizes in its own invocation. */
  finalizer?: Finalizer;
  /** Prints a delivery's metrics as an EMF line (shared/worker/metrics.ts); set on Lambda only. */
  metrics?: (record: EmfRecord) => void;
}

/** The worker's clocks; every wait longer than `maxInProcessWaitMs` happens in the queue instead. */
export interface WorkerTiming {
  /** The last fallback for a model's decode speed, below the fleet's measurement and the catalog's figure. */
  decodeTokensPerSecond: number;
  deadlineMarginMs: number;
  /** A claim's lease; the heartbeat renews it (and the message's visibility) every third of it. */
  leaseMs: number;
  /** Quota waits up to this long are slept in process; longer ones go back to SQS. */
  maxInProcessWaitMs: number;
  /** Backoff after a retryable failure: full jitter over base × 2^(attempt-1), capped. */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** When the partial trace of a streaming call is written again (default 64 KiB or 2 s). */
  traceFlush?: TraceFlush;
}

export interface TaskContext {
  /** SQS ApproximateReceiveCount: 1 on the first delivery (includes returns to wait, so it is not the attempt count). */
  receiveCount: number;
  /** Epoch ms when the runtime will kill this invocation. */
  deadlineAt: number;
  /** Keeps this delivery's message hidden for `seconds` more (the heartbeat's other half). */
  extendVisibility?: (seconds: number) => Promise<void>;
}
