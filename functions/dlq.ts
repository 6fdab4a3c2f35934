import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { s3Client } from "../shared/run/store.ts";
import { SNSClient } from "@aws-sdk/client-sns";
import { Resource } from "sst";
import { createLog } from "../shared/log.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { notifierFromSettings } from "../shared/run/notify.ts";
import { queueFinalizer } from "../shared/run/finalize.ts";
import { SQSClient } from "@aws-sdk/client-sqs";
import { loadSettings } from "../shared/settings.ts";
import { createDeadLetterHandler } from "../shared/worker/dead.ts";

// Tasks that used up their deliveries: record the item as failed so the manifest stays whole.
export const handler = createDeadLetterHandler(() => {
  const settings = loadSettings(process.env, { webhookSecret: Resource.WebhookSecret.value }, { logLevel: "info" });
  const log = createLog({ name: "dlq", level: settings.logLevel });
  return {
    s3: s3Client(),
    coord: createCoordinator(new DynamoDBClient({}), Resource.Coord.name),
    log,
    notifier: notifierFromSettings(settings.notify, new SNSClient({}), log),
    catalog: settings.catalog,
    // The job's end is the finalizer's: this recorder only asks for it when it counts the last item.
    ...(settings.stack.finalizeUrl && { finalizer: queueFinalizer(new SQSClient({}), settings.stack.finalizeUrl) }),
  };
});
