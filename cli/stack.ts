import { readStackOutputs, SST_OUTPUTS } from "./stages.ts";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import { s3Client } from "../shared/run/store.ts";
import { SQSClient } from "@aws-sdk/client-sqs";
import { LongdocError } from "../shared/errors.ts";
import { createCoordinator, type Coordinator } from "../shared/run/coord.ts";
import { loadJobForSubmit, submitLoadedJob } from "../shared/submit/load.ts";
import type { JobRecord } from "../shared/job/record.ts";
import { deployment, type Settings } from "../shared/settings.ts";

// The deployed stack as the CLI sees it: where it is, clients for it, and submitting to it.

/** A stack's runs bucket and task queue: all a client needs to submit to it. */
export interface StackCoordinates {
  bucket: string;
  queueUrl: string;
  /** The coordination table (`coordinationTable` in the outputs, or LONGDOC_TABLE); retry needs it. */
  table: string | null;
  /** Where each came from, for messages: `LONGDOC_BUCKET`, `.sst/outputs.json`, ... */
  from: { bucket: string; queueUrl: string };
  /** The stage whose outputs gave them, when the outputs name it. */
  stage?: string | null;
}

export { SST_OUTPUTS } from "./stages.ts";

/**
 * The deployed stack's coordinates: `LONGDOC_BUCKET` and `LONGDOC_QUEUE_URL` when set (each wins
 * on its own), else `bucket` and `queue` from the stage's outputs under `cwd` (what `sst deploy`
 * writes; `stage` names one when several were deployed from there). Missing either is the user's
 * to fix, and the message names both ways to give it.
 */
export function readStackCoordinates(env: Record<string, string | undefined>, cwd = process.cwd(), stage?: string): StackCoordinates {
  const bothFromEnv = Boolean(env.LONGDOC_BUCKET?.trim() && env.LONGDOC_QUEUE_URL?.trim());
  let stack: { outputs: Record<string, unknown>; from: string | null; stage: string | null };
  try {
    stack = readStackOutputs(cwd, stage);
  } catch (e) {
    // Bucket and queue given outright: which stage the outputs hold matters only for the table.
    if (!(bothFromEnv && stage === undefined && LongdocError.is(e) && e.code === "usage")) throw e;
    stack = { outputs: {}, from: null, stage: null };
  }
  const { outputs, from: file } = stack;
  const pick = (envName: string, outputName: string) => {
    const fromEnv = env[envName]?.trim();
    if (fromEnv) return { value: fromEnv, from: envName };
    const out = outputs[outputName];
    if (typeof out === "string" && out.trim()) return { value: out.trim(), from: `${file} '${outputName}'` };
    return undefined;
  };
  const bucket = pick("LONGDOC_BUCKET", "bucket");
  const queue = pick("LONGDOC_QUEUE_URL", "queue");
  const table = pick("LONGDOC_TABLE", "coordinationTable");
  if (!bucket || !queue) {
    const missing = [!bucket && "the runs bucket", !queue && "the task queue URL"].filter(Boolean).join(" and ");
    throw new LongdocError(
      "job_invalid",
      `no deployed stack: ${missing} unknown. Deploy with 'npx sst deploy' (it writes ${SST_OUTPUTS} with 'bucket' and 'queue' in this folder), ` +
        `or set LONGDOC_BUCKET and LONGDOC_QUEUE_URL` + (file ? ` (${file} has no ${[!bucket && "'bucket'", !queue && "'queue'"].filter(Boolean).join(" or ")})` : ""),
    );
  }
  if (!/^https?:\/\//.test(queue.value)) throw new LongdocError("job_invalid", `the task queue URL from ${queue.from} is not a URL: '${queue.value}'`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket.value)) throw new LongdocError("job_invalid", `the bucket name from ${bucket.from} is not an S3 bucket name: '${bucket.value}'`);
  return { bucket: bucket.value, queueUrl: queue.value, table: table?.value ?? null, from: { bucket: bucket.from, queueUrl: queue.from }, stage: stack.stage };
}

/** `https://sqs.eu-west-1.amazonaws.com/...` → `eu-west-1`; undefined for other hosts (emulators). */
export function regionOfQueueUrl(url: string): string | undefined {
  return /^https:\/\/sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\//.exec(url)?.[1];
}

/**
 * AWS SDK clients for a deployed stack. Credentials and region come from the SDK's default
 * chain (AWS_REGION, AWS_PROFILE, SSO, instance roles...); the region falls back to the queue
 * URL's. The SDK honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_S3 / _SQS) itself, but has no
 * setting for path-style S3 addressing, which emulators standing in for AWS need: it is turned
 * on whenever an endpoint URL is set.
 */
/** The coordination store of a deployed stack; an error naming both ways to give the table when it is unknown. */
export function stackCoordinator(coords: StackCoordinates): { coord: Coordinator; close(): void } {
  if (!coords.table) {
    throw new LongdocError("job_invalid", `the coordination table of the deployed stack is unknown: redeploy (it writes 'coordinationTable' to ${SST_OUTPUTS}) or set LONGDOC_TABLE`);
  }
  const region = regionOfQueueUrl(coords.queueUrl);
  const client = new DynamoDBClient({ ...(region && { region }) });
  return { coord: createCoordinator(client, coords.table), close: () => client.destroy() };
}

export function stackClients(coords: StackCoordinates, env: Record<string, string | undefined>): { s3: S3Client; sqs: SQSClient } {
  const hasRegion = Boolean(env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim());
  const region = hasRegion ? undefined : regionOfQueueUrl(coords.queueUrl);
  const customS3 = Boolean(env.AWS_ENDPOINT_URL_S3?.trim() || env.AWS_ENDPOINT_URL?.trim());
  return {
    s3: s3Client({ ...(region && { region }), ...(customS3 && { forcePathStyle: true }) }),
    sqs: new SQSClient({ ...(region && { region }) }),
  };
}

export interface DeployedSubmit {
  job: JobRecord;
  coords: StackCoordinates;
  /** Local files uploaded, and objects listed under `s3:` sources. */
  uploaded: number;
  listed: number;
}

/** `longdoc submit`: a job file to the deployed stack. */
export async function submitToDeployed(jobFile: string, settings: Settings, env: Record<string, string | undefined>, cwd = process.cwd(), stage?: string): Promise<DeployedSubmit> {
  const loaded = await loadJobForSubmit(jobFile, settings.catalog);
  const coords = readStackCoordinates(env, cwd, stage);
  const { s3, sqs } = stackClients(coords, env);
  try {
    const job = await submitLoadedJob({ s3, sqs, bucket: coords.bucket, queueUrl: coords.queueUrl, maxReceives: deployment.maxReceives }, loaded);
    const all = job.items.flatMap((i) => i.documents);
    const uploaded = new Set(all.filter((d) => d.uri.startsWith(`s3://${coords.bucket}/inputs/`) && !d.source.startsWith("s3://")).map((d) => d.uri)).size;
    const listed = new Set(all.filter((d) => d.source.startsWith("s3://")).map((d) => d.uri)).size;
    return { job, coords, uploaded, listed };
  } finally {
    s3.destroy();
    sqs.destroy();
  }
}
