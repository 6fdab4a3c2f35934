/**
 * bench:overhead's worker container: a process that loads what a worker Lambda loads (the
 * handler, its clients, the model client) and nothing of the benchmark's own machinery (the
 * emulators, the simulator, submit), so its heap and its garbage collections are a worker's.
 * It takes `count` tasks one at a time from the queue with the Lambda-style poller, and prints
 * one JSON line: per task, the worker's step clock and the S3 and DynamoDB requests it sent
 * outside the model call.
 *
 *   node bench/overhead-worker.ts '<json options>'     (started by bench/overhead.ts)
 */
import { localClients, dynamoClient } from "../shared/local/clients.ts";
import { loadCatalog } from "../shared/model/catalog.ts";
import { createModelClient, type ModelClient } from "../shared/model/client.ts";
import { silentLog } from "../shared/log.ts";
import { runPoller } from "../shared/local/poller.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { createWorkerDeps } from "../shared/worker/deps.ts";
import { createWorkerHandler } from "../shared/worker/handlers.ts";
import type { ItemSteps } from "../shared/worker/steps.ts";

export interface WorkerOptions {
  endpoint: string;
  queueUrl: string;
  baseURL: string;
  dynamo: string;
  table: string;
  catalogPath: string;
  count: number;
}

export interface ItemTiming {
  jobId: string;
  /** The worker's step clock for the delivery (shared/worker/steps.ts). */
  steps: ReturnType<ItemSteps["summary"]>;
  /** Requests sent outside the model call. */
  s3Requests: number;
  dynamoRequests: number;
}

/** Counts the requests a client sends outside the model call (the heartbeat's during the call are not the worker's overhead). */
function countRequests(client: { middlewareStack: { add(m: unknown, o: unknown): void } }, count: { n: number }, inModel: () => boolean) {
  const middleware = (next: (a: unknown) => Promise<unknown>) => (args: unknown) => {
    if (!inModel()) count.n++;
    return next(args);
  };
  client.middlewareStack.add(middleware, { step: "initialize", name: "benchCount" });
}

const o = JSON.parse(process.argv[2]!) as WorkerOptions;
const { s3, sqs } = localClients(o.endpoint);
const dynamo = dynamoClient(o.dynamo);
const s3Count = { n: 0 };
const dynamoCount = { n: 0 };
let modelCalls = 0;
countRequests(s3, s3Count, () => modelCalls > 0);
countRequests(dynamo, dynamoCount, () => modelCalls > 0);
const real = createModelClient({ apiKey: "sk-bench", baseURL: o.baseURL });
const model: ModelClient = {
  async chat(req, opts) {
    modelCalls++;
    try {
      return await real.chat(req, opts);
    } finally {
      modelCalls--;
    }
  },
};
let lastSteps: ItemTiming["steps"] | null = null;
const log = { ...silentLog, info: (fields: object, msg: string) => void (msg === "item done" && (lastSteps = (fields as { steps: ItemTiming["steps"] }).steps)) };
const deps = createWorkerDeps({ s3, sqs, queueUrl: o.queueUrl, coord: createCoordinator(dynamo, o.table), catalog: loadCatalog(o.catalogPath), log, apiKey: "sk-bench", baseURL: o.baseURL, model });
const handler = createWorkerHandler(() => deps);
const stop = new AbortController();
const timings: ItemTiming[] = [];
await runPoller({
  sqs,
  queueUrl: o.queueUrl,
  batchSize: 1,
  waitTimeS: 1,
  functionTimeoutMs: 900_000,
  signal: stop.signal,
  handler: async (event, ctx) => {
    s3Count.n = dynamoCount.n = 0;
    lastSteps = null;
    const r = await handler(event, ctx);
    const jobId = (JSON.parse(event.Records[0]!.body) as { jobId: string }).jobId;
    if (!lastSteps) throw new Error(`no "item done" line for a task of ${jobId}: the item did not succeed`);
    timings.push({ jobId, steps: lastSteps, s3Requests: s3Count.n, dynamoRequests: dynamoCount.n });
    if (timings.length >= o.count) stop.abort();
    return r;
  },
});
process.stdout.write(JSON.stringify(timings) + "\n");
process.exit(0);
