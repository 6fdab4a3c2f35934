import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { keys, ObjectStore } from "../run/store.ts";
import { getModel, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { loadJobFile } from "../job/load.ts";
import { s3Uri, type ItemDocument, type JobRecord } from "../job/record.ts";
import { resolveLocalDocuments, resolveOutputSchema, type LocalDocument, type ResolveOptions } from "../job/resolve.ts";
import { resolveS3Documents } from "./sources.ts";
import type { JobSpec } from "../job/schema.ts";
import { prepareSubmit } from "./prepare.ts";
import { submitJob } from "./submit.ts";
import { newJobId } from "../job/expand.ts";
import { looksLikeBatchInput, readHead, type BatchFile } from "../job/batch.ts";
import { loadBatch, submitBatch } from "./batch.ts";
import type { SubmitTarget } from "./target.ts";
import { checkBatchSupport } from "../batch/support.ts";

/** A job file read and checked, before anything is uploaded. */
export interface LoadedJob {
  jobFile: string;
  spec: JobSpec;
  catalog: Catalog;
  model: ModelInfo;
  localDocuments: LocalDocument[];
  outputSchema: Record<string, unknown> | null;
  /** Set when the file is an OpenAI Batch input file: its lines, each an item with its own messages. */
  batch?: BatchFile;
}

/** Reads and checks a job file: spec, model, the local files its `path:` sources match, schema. */
export async function loadJobForSubmit(jobFile: string, catalog: Catalog, resolve: ResolveOptions = {}): Promise<LoadedJob> {
  if (looksLikeBatchInput(await readHead(jobFile).catch(() => ""), jobFile)) {
    const { spec, model, batch } = await loadBatch(jobFile, catalog);
    return { jobFile, spec, catalog, model, localDocuments: [], outputSchema: null, batch };
  }
  const spec = await loadJobFile(jobFile);
  const model = getModel(catalog, spec.model);
  checkBatchSupport(spec, model, jobFile);
  const localDocuments = await resolveLocalDocuments(spec, jobFile, resolve);
  const outputSchema = await resolveOutputSchema(spec, jobFile);
  return { jobFile, spec, catalog, model, localDocuments, outputSchema };
}

/** The key a local document is uploaded to: content-addressed, so a re-upload of the same bytes lands on the same key. */
export function inputKey(bytes: Uint8Array, file: string): string {
  return keys.input(createHash("sha256").update(bytes).digest("hex"), path.basename(file));
}

/** Uploads local documents to `inputs/<sha256-16>/<basename>` in the stack's bucket. */
export async function uploadDocuments(store: ObjectStore, docs: LocalDocument[]): Promise<ItemDocument[]> {
  const out: ItemDocument[] = [];
  for (const d of docs) {
    const bytes = await readFile(d.absolutePath);
    const key = inputKey(bytes, d.absolutePath);
    await store.put(key, bytes, "application/octet-stream");
    out.push({ source: d.source, uri: s3Uri(store.bucket, key), bytes: bytes.byteLength });
  }
  return out;
}

export type { SubmitTarget } from "./target.ts";

/**
 * Uploads the job's local documents, lists its `s3:` sources, measures what the job needs
 * measured (packs; the cost cap when asked) and submits: the job record, the initial manifest, one task per item.
 */
export async function submitLoadedJob(target: SubmitTarget, job: LoadedJob): Promise<JobRecord> {
  if (job.batch) return submitBatch(target, { spec: job.spec, model: job.model, batch: job.batch });
  const store = new ObjectStore(target.s3, target.bucket);
  const documents = [...(await uploadDocuments(store, job.localDocuments)), ...(await resolveS3Documents(job.spec, target.s3))];
  const { packs } = await prepareSubmit(target.s3, job.spec, job.model, documents, { checkCostCap: target.checkCostCap ?? false });
  return submitJob(
    { store, sqs: target.sqs, queueUrl: target.queueUrl, maxReceives: target.maxReceives, coord: target.coord },
    {
      spec: job.spec,
      model: job.model,
      documents,
      outputSchema: job.outputSchema,
      packs,
      batchModel: job.model,
      ...(target.batchLimits && { batchLimits: target.batchLimits }),
      ...(target.token !== undefined && { jobId: newJobId(job.spec.name, new Date(), target.token), trigger: `cli ${target.token}` }),
    },
  );
}

