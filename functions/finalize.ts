import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SNSClient } from "@aws-sdk/client-sns";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Resource } from "sst";
import { createLog } from "../shared/log.ts";
import { printEmf } from "../shared/metrics/emf.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { createFinalizeHandler } from "../shared/run/finalize.ts";
import { notifierFromSettings } from "../shared/run/notify.ts";
import { s3Client } from "../shared/run/store.ts";
import { deployment, loadSettings } from "../shared/settings.ts";

// Finalize queue → one job's end per record: manifest, report, job-ended event (shared/run/finalize.ts).
let deps: ReturnType<typeof build> | undefined;
function build() {
  const settings = loadSettings(process.env, { webhookSecret: Resource.WebhookSecret.value }, { logLevel: "info" });
  const log = createLog({ name: "finalize", level: settings.logLevel });
  if (!settings.stack.finalizeUrl) throw new Error("LONGDOC_FINALIZE_URL is not set: infra/finalize.ts passes the finalize queue's URL to the finalizer");
  return {
    s3: s3Client(),
    sqs: new SQSClient({}),
    queueUrl: settings.stack.finalizeUrl,
    coord: createCoordinator(new DynamoDBClient({}), Resource.Coord.name),
    notifier: notifierFromSettings(settings.notify, new SNSClient({}), log),
    log,
    leaseS: deployment.finalizeLeaseS,
    metrics: printEmf,
  };
}

export const handler = createFinalizeHandler(async () => (deps ??= build()));
