import path from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { s3Client } from "../shared/run/store.ts";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Resource } from "sst";
import { createLog } from "../shared/log.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { deployment, loadSettings } from "../shared/settings.ts";
import { submitFromEvent, type TriggerEvent } from "../shared/submit/trigger.ts";

// Schedules ({ job }) and uploads under inbox/<job-name>/ (S3 events) both land here.
const settings = loadSettings(process.env, { bucket: Resource.Runs.name, queueUrl: Resource.Tasks.url }, { logLevel: "info" });
const log = createLog({ name: "submit", level: settings.logLevel });
const deps = {
  s3: s3Client(),
  sqs: new SQSClient({}),
  bucket: Resource.Runs.name,
  queueUrl: Resource.Tasks.url,
  jobsDir: path.join(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), "jobs"),
  catalog: settings.catalog,
  coord: createCoordinator(new DynamoDBClient({}), Resource.Coord.name),
  maxReceives: deployment.maxReceives,
  log,
};

export const handler = async (event: TriggerEvent) => {
  const jobs = await submitFromEvent(deps, event);
  return { jobIds: jobs.map((j) => j.jobId) };
};
