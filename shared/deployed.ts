import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { ObjectStore } from "./aws/store.ts";
import { getModel, loadCatalog, type Catalog, type ModelInfo } from "./catalog.ts";
import { LongdocError } from "./errors.ts";
import { loadJobFile } from "./job/load.ts";
import { s3Uri, type ItemDocument, type JobRecord } from "./job/record.ts";
import { resolveLocalDocuments, resolveOutputSchema, resolveS3Documents, type LocalDocument } from "./job/resolve.ts";
import type { JobSpec } from "./job/schema.ts";
import { prepareSubmit } from "./presubmit.ts";
import { settings } from "./settings.ts";
import { submitJob } from "./submit.ts";

// ── Where a stack is ─────────────────────────────────────────────────────────────────────────

/** A stack's runs bucket and task queue: all a client needs to submit to it. */
export interface StackCoordinates {
  bucket: string;
  queueUrl: string;
  /** Where each came from, for messages: `LONGDOC_BUCKET`, `.sst/outputs.json`, ... */
  from: { bucket: string; queueUrl: string };
}

/** Written by `sst deploy` in the app's root: the object `infra/index.ts` `deploy()` returns. */
export const SST_OUTPUTS = path.join(".sst", "outputs.json");

/**
 * The deployed stack's coordinates: `LONGDOC_BUCKET` and `LONGDOC_QUEUE_URL` when set (each wins
 * on its own), else `bucket` and `queue` from `.sst/outputs.json` under `cwd` (what `sst deploy`
 * writes). Missing either is the user's to fix, and the message names both ways to give it.
 */
export function readStackCoordinates(env: Record<string, string | undefined>, cwd = process.cwd()): StackCoordinates {
  const file = path.join(cwd, SST_OUTPUTS);
  let outputs: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) outputs = parsed as Record<string, unknown>;
      else throw new Error("not a JSON object");
    } catch (e) {
      throw new LongdocError("job_invalid", `${file}: cannot read the stack outputs (${(e as Error).message}); redeploy with 'npx sst deploy' or set LONGDOC_BUCKET and LONGDOC_QUEUE_URL`);
    }
  }
  const pick = (envName: string, outputName: string) => {
    const fromEnv = env[envName]?.trim();
    if (fromEnv) return { value: fromEnv, from: envName };
    const out = outputs[outputName];
    if (typeof out === "string" && out.trim()) return { value: out.trim(), from: `${SST_OUTPUTS} '${outputName}'` };
    return undefined;
  };
  const bucket = pick("LONGDOC_BUCKET", "bucket");
  const queue = pick("LONGDOC_QUEUE_URL", "queue");
  if (!bucket || !queue) {
    const missing = [!bucket && "the runs bucket", !queue && "the task queue URL"].filter(Boolean).join(" and ");
    throw new LongdocError(
      "job_invalid",
      `no deployed stack: ${missing} unknown. Deploy with 'npx sst deploy' (it writes ${SST_OUTPUTS} with 'bucket' and 'queue' in this folder), ` +
        `or set LONGDOC_BUCKET and LONGDOC_QUEUE_URL` + (existsSync(file) ? ` (${file} has no ${[!bucket && "'bucket'", !queue && "'queue'"].filter(Boolean).join(" or ")})` : ""),
    );
  }
  if (!/^https?:\/\//.test(queue.value)) throw new LongdocError("job_invalid", `the task queue URL from ${queue.from} is not a URL: '${queue.value}'`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket.value)) throw new LongdocError("job_invalid", `the bucket name from ${bucket.from} is not an S3 bucket name: '${bucket.value}'`);
  return { bucket: bucket.value, queueUrl: queue.value, from: { bucket: bucket.from, queueUrl: queue.from } };
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
export function stackClients(coords: StackCoordinates, env: Record<string, string | undefined>): { s3: S3Client; sqs: SQSClient } {
  const hasRegion = Boolean(env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim());
  const region = hasRegion ? undefined : regionOfQueueUrl(coords.queueUrl);
  const customS3 = Boolean(env.AWS_ENDPOINT_URL_S3?.trim() || env.AWS_ENDPOINT_URL?.trim());
  return {
    s3: new S3Client({ ...(region && { region }), ...(customS3 && { forcePathStyle: true }) }),
    sqs: new SQSClient({ ...(region && { region }) }),
  };
}

// ── Submitting a job file to a stack (deployed, or the local emulator standing in for it) ────

/** A job file read and checked, before anything is uploaded. */
export interface LoadedJob {
  jobFile: string;
  spec: JobSpec;
  catalog: Catalog;
  model: ModelInfo;
  localDocuments: LocalDocument[];
  outputSchema: Record<string, unknown> | null;
}

/** Reads and checks a job file: spec, model, the local files its `path:` sources match, schema. */
export async function loadJobForSubmit(jobFile: string, env: Record<string, string | undefined>): Promise<LoadedJob> {
  const spec = await loadJobFile(jobFile);
  const catalog = loadCatalog(env.LONGDOC_CATALOG);
  const model = getModel(catalog, spec.model);
  const localDocuments = await resolveLocalDocuments(spec, jobFile);
  const outputSchema = await resolveOutputSchema(spec, jobFile);
  return { jobFile, spec, catalog, model, localDocuments, outputSchema };
}

/** The key a local document is uploaded to: content-addressed, so a re-upload of the same bytes lands on the same key. */
export function inputKey(bytes: Uint8Array, file: string): string {
  return `inputs/${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}/${path.basename(file)}`;
}

/** Uploads local documents to `inputs/<sha256-16>/<basename>` in the stack's bucket. */
export async function uploadDocuments(store: ObjectStore, docs: LocalDocument[]): Promise<ItemDocument[]> {
  const out: ItemDocument[] = [];
  for (const d of docs) {
    const bytes = await readFile(d.absolutePath);
    const key = inputKey(bytes, d.absolutePath);
    await store.put(key, bytes, "application/octet-stream");
    out.push({ source: d.source, uri: s3Uri(store.bucket, key) });
  }
  return out;
}

export interface SubmitTarget {
  s3: S3Client;
  sqs: SQSClient;
  bucket: string;
  queueUrl: string;
  /** Deliveries before a task goes to the DLQ (the queue's redrive policy). */
  maxReceives: number;
}

/**
 * Uploads the job's local documents, lists its `s3:` sources, measures what the job needs
 * measured (packs, cost cap) and submits: the job record, the initial manifest, one task per item.
 */
export async function submitLoadedJob(target: SubmitTarget, job: LoadedJob): Promise<JobRecord> {
  const store = new ObjectStore(target.s3, target.bucket);
  const documents = [...(await uploadDocuments(store, job.localDocuments)), ...(await resolveS3Documents(job.spec, target.s3))];
  const { packs } = await prepareSubmit(target.s3, job.spec, job.model, documents);
  return submitJob(
    { store, sqs: target.sqs, queueUrl: target.queueUrl, maxReceives: target.maxReceives },
    { spec: job.spec, model: job.model, documents, outputSchema: job.outputSchema, packs },
  );
}

export interface DeployedSubmit {
  job: JobRecord;
  coords: StackCoordinates;
  /** Local files uploaded, and objects listed under `s3:` sources. */
  uploaded: number;
  listed: number;
}

/** `longdoc submit`: a job file to the deployed stack. */
export async function submitToDeployed(jobFile: string, env: Record<string, string | undefined>, cwd = process.cwd()): Promise<DeployedSubmit> {
  const loaded = await loadJobForSubmit(jobFile, env);
  const coords = readStackCoordinates(env, cwd);
  const { s3, sqs } = stackClients(coords, env);
  try {
    const job = await submitLoadedJob({ s3, sqs, bucket: coords.bucket, queueUrl: coords.queueUrl, maxReceives: settings.maxReceives }, loaded);
    const all = job.items.flatMap((i) => i.documents);
    const uploaded = new Set(all.filter((d) => d.uri.startsWith(`s3://${coords.bucket}/inputs/`) && !d.source.startsWith("s3://")).map((d) => d.uri)).size;
    const listed = new Set(all.filter((d) => d.source.startsWith("s3://")).map((d) => d.uri)).size;
    return { job, coords, uploaded, listed };
  } finally {
    s3.destroy();
    sqs.destroy();
  }
}
