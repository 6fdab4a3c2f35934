import path from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Resource } from "sst";
import { loadCatalog } from "../shared/model/catalog.ts";
import { createLog } from "../shared/log.ts";
import { deployment } from "../shared/settings.ts";
import { submitFromEvent, type TriggerEvent } from "../shared/submit/trigger.ts";

// Schedules ({ job }) and uploads under inbox/<job-name>/ (S3 events) both land here.
const log = createLog({ name: "submit" });
const deps = {
  s3: new S3Client({}),
  sqs: new SQSClient({}),
  bucket: Resource.Runs.name,
  queueUrl: Resource.Tasks.url,
  jobsDir: path.join(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), "jobs"),
  catalog: loadCatalog(process.env.LONGDOC_CATALOG),
  maxReceives: deployment.maxReceives,
  log,
};

export const handler = async (event: TriggerEvent) => {
  const jobs = await submitFromEvent(deps, event);
  return { jobIds: jobs.map((j) => j.jobId) };
};
