import { webhookSecretProblem } from "./webhook-secret.ts";
import { loadCatalog, type Catalog } from "./model/catalog.ts";
import { LongdocError } from "./errors.ts";
import { redactUrl } from "./log.ts";

/**
 * The numbers that shape the deployment and the local runtime, in one place so that
 * infra/, the local poller and the tests agree. Units are in the names.
 */
export const deployment = Object.freeze({
  /** Lambda's hard ceiling; the worker budgets its stream to the time left. */
  workerTimeoutS: 900,
  workerMemoryMb: 2048,
  /** AWS asks for a visibility timeout of at least 6 x the function timeout. */
  queueVisibilityTimeoutS: 900 * 6,
  /**
   * Deliveries before a task goes to the dead-letter queue. High on purpose: a task returned to
   * wait for quota or a backoff is delivered again, and that is not a failure. Real model
   * attempts are counted by the worker (maxAttempts); the DLQ only catches crash loops and poison.
   */
  maxReceives: 100,
  /** Model attempts per item before the worker records it failed. */
  maxAttempts: 3,
  /** A worker's claim on an item; the heartbeat renews it every third, so a dead worker's task is back within it. */
  claimLeaseS: 60,
  /** Quota waits up to this long are slept in the Lambda; longer ones wait in the queue. */
  maxInProcessWaitMs: 3_000,
  /** Backoff after a retryable failure (full jitter). */
  backoffBaseMs: 2_000,
  backoffCapMs: 300_000,
  /** One task per invocation: a task is one long model call. */
  workerBatchSize: 1,
  /** Ceiling on concurrent worker Lambdas (SQS scaling config accepts 2-1000). */
  maxWorkers: 50,
  dlqRetentionS: 14 * 24 * 3600,
  /**
   * How long the task queue keeps a message: SQS's maximum (14 days). A task waits for quota in
   * the queue, so this bounds the longest job: submit refuses one whose quota need is longer.
   */
  taskRetentionS: 14 * 24 * 3600,
  /** Stop streaming this long before the Lambda deadline so results can be written. */
  deadlineMarginMs: 30_000,
  /** Submit lists, records and sends every task of a job (50,000 at most), resuming where a killed invocation stopped. */
  submitTimeoutS: 900,
  /** Tasks sent at once by submit (SendMessageBatch calls in flight, ten tasks each). */
  submitSendLanes: 16,
  /** The finalizer's own invocation: it writes the manifest, the report and the job-ended event. */
  finalizeTimeoutS: 900,
  /** The finalizer keeps its message hidden this long, renewed every third, so a killed finalizer's job is taken up again within it. */
  finalizeLeaseS: 60,
  /** Deliveries of a finalize message before it goes to FinalizeDlq. */
  finalizeMaxReceives: 10,
  /** An assumption ([A]): Qwen3-Max decodes on the order of 50 tokens/s; sizes output to the deadline. */
  assumedDecodeTokensPerSecond: 50,
  /** The local runtime shortens the visibility timeout so failed tasks return quickly. */
  local: Object.freeze({
    /** As on AWS, the queue's own timeout only matters if a worker never sets one; workers set it on every wait. */
    visibilityTimeoutS: 30,
    /** Short leases locally, so a killed worker process's item is taken over within seconds. */
    claimLeaseS: 6,
    pollWaitS: 1,
    workers: 4,
  }),
});

export type Deployment = typeof deployment;

/** Singapore: where qwen3-max is confirmed (docs/qwen-api.md §1). */
export const DEFAULT_QWEN_BASE_URL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";

export interface ModelEndpoint {
  /** null: no key, so local runs use the simulator. */
  apiKey: string | null;
  baseURL: string | null;
}

/** What one process needs to know about where it runs: read and checked once, at its edge. */
export interface Settings {
  endpoint: ModelEndpoint;
  catalog: Catalog;
  /** The override file the catalog was merged with (LONGDOC_CATALOG), for messages. */
  catalogPath: string | null;
  /** pino level for the workers' logs (LONGDOC_LOG). */
  logLevel: string;
  /** The deployed stack's resources, when the edge has them (SST links on Lambda). */
  stack: { bucket: string | null; queueUrl: string | null; finalizeUrl: string | null };
  /** The end of a job: the topic its event goes to, and the secret that signs webhook calls. */
  notify: { topicArn: string | null; webhookSecret: string | null; loopbackHttp: boolean };
  /** Test-only (LONGDOC_TEST_AWS_FAULTS): the fault suite's AWS faults for local worker processes. */
  testAwsFaults: string | null;
}

type Env = Readonly<Record<string, string | undefined>>;

/** What SST links hand a Lambda: they win over the environment. */
export interface LinkedResources {
  apiKey?: string;
  bucket?: string;
  queueUrl?: string;
  webhookSecret?: string;
}

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/**
 * The one place that reads the environment. Each edge (a function in functions/, the CLI in
 * bin/) calls it once and passes the frozen result down; nothing below reads process.env.
 */
export function loadSettings(env: Env, resources: LinkedResources = {}, defaults: { logLevel?: string } = {}): Readonly<Settings> {
  const catalogPath = env.LONGDOC_CATALOG?.trim() || null;
  const logLevel = env.LONGDOC_LOG?.trim() || defaults.logLevel || "warn";
  if (!LOG_LEVELS.has(logLevel)) throw new LongdocError("usage", `LONGDOC_LOG must be one of ${[...LOG_LEVELS].join(", ")}, got '${logLevel}'`);
  const endpoint = readModelEndpoint(resources.apiKey === undefined ? env : { ...env, DASHSCOPE_API_KEY: resources.apiKey });
  return Object.freeze({
    endpoint: Object.freeze(endpoint),
    // The endpoint's region decides the prices and the currency of every cost (LONGDOC_REGION wins, for a simulator or proxy).
    catalog: loadCatalog(catalogPath ?? undefined, { baseURL: endpoint.baseURL, region: env.LONGDOC_REGION }),
    catalogPath,
    logLevel,
    stack: Object.freeze({
      bucket: resources.bucket ?? null,
      queueUrl: resources.queueUrl ?? (env.LONGDOC_TASKS_URL?.trim() || null),
      // Where the worker that counts a job's last item asks for the job's end (infra/finalize.ts).
      finalizeUrl: env.LONGDOC_FINALIZE_URL?.trim() || null,
    }),
    notify: Object.freeze(readNotify(env, resources)),
    // Test-only: AWS faults injected into local worker processes (shared/local/aws-faults.ts).
    testAwsFaults: env.LONGDOC_TEST_AWS_FAULTS?.trim() || null,
  });
}

/** The model endpoint from DASHSCOPE_API_KEY and QWEN_BASE_URL; errors name the variable. */
export function readModelEndpoint(env: Env): ModelEndpoint {
  const apiKey = env.DASHSCOPE_API_KEY?.trim() || null;
  const baseURL = env.QWEN_BASE_URL?.trim() || null;
  if (baseURL !== null) {
    let url: URL;
    try {
      url = new URL(baseURL);
    } catch {
      throw new LongdocError("usage", `QWEN_BASE_URL is not a URL: '${redactUrl(baseURL)}'`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new LongdocError("usage", `QWEN_BASE_URL must be http(s), got '${url.protocol}'`);
  }
  if (apiKey !== null && !/^[\x21-\x7e]+$/.test(apiKey)) throw new LongdocError("usage", "DASHSCOPE_API_KEY has spaces or non-ASCII characters; paste the key alone");
  return { apiKey, baseURL: baseURL ?? (apiKey ? DEFAULT_QWEN_BASE_URL : null) };
}

/**
 * LONGDOC_EVENTS_TOPIC (the topic's ARN; infra passes it to the worker), LONGDOC_WEBHOOK_SECRET
 * (the WebhookSecret SST secret wins when linked) and LONGDOC_WEBHOOK_LOOPBACK_HTTP=1, which lets
 * tests and local demos call an https://127.0.0.1 or localhost webhook over plain http.
 */
function readNotify(env: Env, resources: LinkedResources): Settings["notify"] {
  const flag = env.LONGDOC_WEBHOOK_LOOPBACK_HTTP?.trim() ?? "";
  if (!["", "0", "1", "true", "false"].includes(flag)) throw new LongdocError("usage", `LONGDOC_WEBHOOK_LOOPBACK_HTTP must be 1 or 0, got '${flag}'`);
  const fromEnv = env.LONGDOC_WEBHOOK_SECRET?.trim() || null;
  const problem = resources.webhookSecret === undefined && fromEnv !== null ? webhookSecretProblem(fromEnv) : null;
  if (problem) throw new LongdocError("usage", `LONGDOC_WEBHOOK_SECRET ${problem}`);
  const secret = resources.webhookSecret ?? fromEnv;
  return { topicArn: env.LONGDOC_EVENTS_TOPIC?.trim() || null, webhookSecret: secret, loopbackHttp: flag === "1" || flag === "true" };
}
