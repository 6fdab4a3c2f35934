/**
 * The numbers that shape the deployment and the local runtime, in one place so that
 * infra/, the local poller and the tests agree. Units are in the names.
 */
export const settings = Object.freeze({
  /** Lambda's hard ceiling; the worker budgets its stream to the time left. */
  workerTimeoutS: 900,
  workerMemoryMb: 2048,
  /** AWS asks for a visibility timeout of at least 6 x the function timeout. */
  queueVisibilityTimeoutS: 900 * 6,
  /** Deliveries before a task goes to the dead-letter queue. */
  maxReceives: 3,
  /** One task per invocation: a task is one long model call. */
  workerBatchSize: 1,
  /** Ceiling on concurrent worker Lambdas (SQS scaling config accepts 2-1000). */
  maxWorkers: 50,
  dlqRetentionS: 14 * 24 * 3600,
  /** Stop streaming this long before the Lambda deadline so results can be written. */
  deadlineMarginMs: 30_000,
  submitTimeoutS: 60,
  /** An assumption ([A]): Qwen3-Max decodes on the order of 50 tokens/s; sizes output to the deadline. */
  assumedDecodeTokensPerSecond: 50,
  /** The local runtime shortens the visibility timeout so failed tasks return quickly. */
  local: Object.freeze({
    visibilityTimeoutS: 2,
    pollWaitS: 1,
    workers: 4,
  }),
});

export type Settings = typeof settings;
