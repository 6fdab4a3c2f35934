import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Resource } from "sst";
import { createBatchApi } from "../shared/batch/api.ts";
import { pollOpenBatches } from "../shared/batch/poll.ts";
import { createLog } from "../shared/log.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { ObjectStore, s3Client } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";

// Every few minutes (infra/batch-poll.ts): one pass over the open jobs' provider batches.
const settings = loadSettings(process.env, { apiKey: Resource.DashscopeApiKey.value }, { logLevel: "info" });
const log = createLog({ name: "batch-poll", level: settings.logLevel });

export const handler = async () => {
  if (!settings.stack.queueUrl || !process.env.LONGDOC_BUCKET) throw new Error("LONGDOC_TASKS_URL and LONGDOC_BUCKET must be set: infra/batch-poll.ts passes them");
  const polled = await pollOpenBatches({
    store: new ObjectStore(s3Client(), process.env.LONGDOC_BUCKET),
    sqs: new SQSClient({}),
    queueUrl: settings.stack.queueUrl,
    coord: createCoordinator(new DynamoDBClient({}), Resource.Coord.name),
    catalog: settings.catalog,
    api: createBatchApi({ apiKey: settings.endpoint.apiKey!, baseURL: settings.endpoint.baseURL! }),
    log,
  });
  log.info(polled, "batches polled");
  return polled;
};
