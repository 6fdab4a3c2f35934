import { S3Client } from "@aws-sdk/client-s3";
import { Resource } from "sst";
import { createLog } from "../shared/log.ts";
import { loadSettings } from "../shared/settings.ts";
import { createWorkerDeps } from "../shared/worker/deps.ts";
import { createWorkerHandler } from "../shared/worker/handlers.ts";

// SQS → one task per record → batchItemFailures. All logic is in shared/; the local runtime
// builds the same handler with createWorkerHandler and local clients.
export const handler = createWorkerHandler(() => {
  // Read and checked once per container, exactly as a local run checks them.
  const settings = loadSettings(process.env, { apiKey: Resource.DashscopeApiKey.value, bucket: Resource.Runs.name });
  return createWorkerDeps({
    s3: new S3Client({}),
    catalog: settings.catalog,
    log: createLog({ name: "worker", level: settings.logLevel }),
    apiKey: settings.endpoint.apiKey!,
    baseURL: settings.endpoint.baseURL!,
    quotaShare: (job) => 1 / job.limits.concurrency,
  });
});
