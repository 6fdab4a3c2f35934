/**
 * One local worker process: what a Lambda container is on AWS. It builds its own clients and
 * module state from the fleet's configuration, polls the task queue (and, for one of them, the
 * dead-letter queue) as Lambda's event source mapping would, and shares nothing with the other
 * processes but the emulated S3/SQS and the coordination table. SIGTERM stops it after the
 * batch in hand; SIGKILL is a crash, and the fleet must survive it.
 */
import { LongdocError } from "../errors.ts";
import { createLog } from "../log.ts";
import type { ModelClient } from "../model/client.ts";
import { createCoordinator } from "../run/coord.ts";
import { loadSettings } from "../settings.ts";
import { createDeadLetterHandler } from "../worker/dead.ts";
import { createWorkerDeps } from "../worker/deps.ts";
import { createWorkerHandler } from "../worker/handlers.ts";
import { runPoller } from "./poller.ts";
import { dynamoClient, localClients } from "./clients.ts";
import { notifierFromSettings } from "../run/notify.ts";
import { parseWorkerConfig } from "./fleet-config.ts";
import { dieWithParent } from "./parent-watch.ts";
import { withFixedShareQuota } from "./fixed-share-quota.ts";
import { createFinalizeHandler, queueFinalizer } from "../run/finalize.ts";
import { deployment } from "../settings.ts";

const config = parseWorkerConfig(process.env.LONGDOC_WORKER_CONFIG);
const settings = loadSettings(process.env);
const log = createLog({ name: `worker-${config.index}`, level: settings.logLevel });
const { s3, sqs, sns } = localClients(config.endpoint);
const notifier = notifierFromSettings(settings.notify, sns, log);
const dynamo = dynamoClient(config.dynamoEndpoint);
// TEST ONLY: the fault suite's injected S3/DynamoDB errors (aws-faults.ts); never set by a real run.
if (process.env.LONGDOC_TEST_AWS_FAULTS) {
  const { installAwsFaults, parseAwsFaultSpec } = await import("./aws-faults.ts");
  const spec = parseAwsFaultSpec(process.env.LONGDOC_TEST_AWS_FAULTS);
  installAwsFaults(spec, "s3", s3, config.index * 2);
  installAwsFaults(spec, "dynamodb", dynamo, config.index * 2 + 1);
}
const tableCoord = createCoordinator(dynamo, config.table);
const coord = config.quotaMode === "fixed-share" ? withFixedShareQuota(tableCoord, config.processes ?? 1) : tableCoord;

/** Cancel drains the queue: its workers must never call the model. */
const noModel: ModelClient = { chat: () => Promise.reject(new LongdocError("internal", "this run drains the queue without calling the model")) };

const deps = createWorkerDeps({
  s3,
  sqs,
  queueUrl: config.queueUrl,
  coord,
  catalog: settings.catalog,
  log,
  apiKey: settings.endpoint.apiKey ?? "sk-local-simulator",
  baseURL: settings.endpoint.baseURL ?? "http://127.0.0.1:9/unset",
  model: config.noModel ? noModel : undefined,
  timing: config.timing,
  notifier,
  finalizer: queueFinalizer(sqs, config.finalizeUrl),
});
const abort = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => abort.abort());
// The run that started this process died (kill -9): its emulators are gone too, so stop at once
// rather than linger as an orphan. The item in hand is taken over by the next run once its claim expires.
process.on("disconnect", () => process.exit(1));
// The same when this process's main thread is stuck in a long synchronous task and cannot see the disconnect.
dieWithParent(process.ppid);

const common = { sqs, waitTimeS: config.pollWaitS, functionTimeoutMs: config.functionTimeoutMs, signal: abort.signal, onError: (e: unknown) => log.error({ error: String(e) }, "poller error") };
const pollers = [runPoller({ ...common, queueUrl: config.queueUrl, queueArn: config.queueArn, handler: createWorkerHandler(() => deps), batchSize: config.batchSize })];
if (config.deadLetters) {
  pollers.push(runPoller({ ...common, queueUrl: config.dlqUrl, queueArn: config.dlqArn, handler: createDeadLetterHandler(() => ({ s3, coord, log, notifier, catalog: settings.catalog, finalizer: deps.finalizer })), batchSize: 10 }));
  // The finalizer, as the deployed stack runs it: its own queue, its own invocation per job.
  const finalize = createFinalizeHandler(async () => ({ s3, coord: tableCoord, notifier, log, sqs, queueUrl: config.finalizeUrl, leaseS: deployment.local.claimLeaseS }));
  pollers.push(runPoller({ ...common, queueUrl: config.finalizeUrl, queueArn: config.finalizeArn, handler: finalize, batchSize: 1, functionTimeoutMs: deployment.finalizeTimeoutS * 1000 }));
}
process.send?.({ ready: true });
await Promise.allSettled(pollers);
s3.destroy();
sqs.destroy();
sns.destroy();
process.exit(0);
