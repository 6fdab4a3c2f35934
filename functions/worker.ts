import { S3Client } from "@aws-sdk/client-s3";
import { Resource } from "sst";
import { loadCatalog } from "../shared/catalog.ts";
import { DEFAULT_QWEN_BASE_URL } from "../shared/config.ts";
import { createWorkerDeps } from "../shared/deps.ts";
import { createWorkerHandler } from "../shared/handlers.ts";
import { createLog } from "../shared/log.ts";

// SQS → one task per record → batchItemFailures. All logic is in shared/; the local runtime
// builds the same handler with createWorkerHandler and local clients.
export const handler = createWorkerHandler(() =>
  createWorkerDeps({
    s3: new S3Client({}),
    catalog: loadCatalog(process.env.LONGDOC_CATALOG),
    log: createLog({ name: "worker" }),
    apiKey: Resource.DashscopeApiKey.value,
    baseURL: process.env.QWEN_BASE_URL || DEFAULT_QWEN_BASE_URL,
    quotaShare: (job) => 1 / job.limits.concurrency,
  }),
);
