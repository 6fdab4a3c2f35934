import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { s3Client } from "../shared/run/store.ts";
import { SNSClient } from "@aws-sdk/client-sns";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Resource } from "sst";
import { createLog } from "../shared/log.ts";
import { printEmf } from "../shared/metrics/emf.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { notifierFromSettings } from "../shared/run/notify.ts";
import { queueFinalizer } from "../shared/run/finalize.ts";
import { loadSettings } from "../shared/settings.ts";
import { createWorkerDeps } from "../shared/worker/deps.ts";
import { createWorkerHandler } from "../shared/worker/handlers.ts";

// SQS → one task per record → batchItemFailures. All logic is in shared/; the local fleet
// starts the same handler in separate processes with local clients.
export const handler = createWorkerHandler(() => {
  // Read and checked once per container, exactly as a local run checks them.
  const settings = loadSettings(process.env, { apiKey: Resource.DashscopeApiKey.value, webhookSecret: Resource.WebhookSecret.value }, { logLevel: "info" });
  const log = createLog({ name: "worker", level: settings.logLevel });
  if (!settings.stack.queueUrl) throw new Error("LONGDOC_TASKS_URL is not set: infra/queue.ts passes the task queue's URL to the worker");
  if (!settings.stack.finalizeUrl) throw new Error("LONGDOC_FINALIZE_URL is not set: infra/queue.ts passes the finalize queue's URL to the worker");
  const sqs = new SQSClient({});
  return createWorkerDeps({
    s3: s3Client(),
    sqs,
    queueUrl: settings.stack.queueUrl,
    coord: createCoordinator(new DynamoDBClient({}), Resource.Coord.name),
    catalog: settings.catalog,
    log,
    apiKey: settings.endpoint.apiKey!,
    baseURL: settings.endpoint.baseURL!,
    notifier: notifierFromSettings(settings.notify, new SNSClient({}), log),
    finalizer: queueFinalizer(sqs, settings.stack.finalizeUrl),
    metrics: printEmf,
  });
});
