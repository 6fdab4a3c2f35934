import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { keys, ObjectStore } from "../run/store.ts";
import { checkFallback, getModel, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { loadJobFile } from "../job/load.ts";
import { s3Uri, type ItemDocument, type JobItem, type JobRecord } from "../job/record.ts";
import { resolveLocalDocuments, resolveOutputSchema, type LocalDocument, type ResolveOptions } from "../job/resolve.ts";
import { resolveS3Documents } from "./sources.ts";
import type { JobSpec } from "../job/schema.ts";
import { prepareSubmit } from "./prepare.ts";
import { measureDocuments } from "./pack.ts";
import { assertWithinCostCap, estimateItems, type LoadedText } from "./estimate.ts";
import { submitJob } from "./submit.ts";
import { expandItems, newJobId } from "../job/expand.ts";
import { looksLikeBatchInput, readHead, type BatchFile } from "../job/batch.ts";
import { loadBatch, submitBatch } from "./batch.ts";
import type { SubmitTarget } from "./target.ts";
import { selectItems, type ItemSelection, type RecordedOverrides } from "./select.ts";
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
  /** This run's item selection (`--limit`, `--only`): applied to the items once they are known. */
  select?: ItemSelection;
  /** What this run changed of the job file (`--model`, `--max-cost`, the selection): recorded in job.json. */
  overrides?: RecordedOverrides;
}

/** Reads and checks a job file: spec, model, the local files its `path:` sources match, schema. */
export async function loadJobForSubmit(jobFile: string, catalog: Catalog, resolve: ResolveOptions = {}): Promise<LoadedJob> {
  if (looksLikeBatchInput(await readHead(jobFile).catch(() => ""), jobFile)) {
    const { spec, model, batch } = await loadBatch(jobFile, catalog);
    return { jobFile, spec, catalog, model, localDocuments: [], outputSchema: null, batch };
  }
  const spec = await loadJobFile(jobFile);
  const model = getModel(catalog, spec.model);
  checkFallback(catalog, spec, model);
  checkBatchSupport(spec, model, jobFile);
  const localDocuments = await resolveLocalDocuments(spec, jobFile, resolve);
  const outputSchema = await resolveOutputSchema(spec, jobFile, resolve);
  return { jobFile, spec, catalog, model, localDocuments, outputSchema };
}

/** The cost-cap check of a local run, over the items it will run (as prepareSubmit makes it over all). */
async function checkCostCapOf(s3: SubmitTarget["s3"], job: LoadedJob, items: JobItem[]): Promise<void> {
  if (job.spec.limits.maxCostUsd === undefined && job.spec.limits.maxCost === undefined) return;
  const measured = await measureDocuments(s3, items.flatMap((i) => i.documents), job.spec);
  const texts = new Map<string, LoadedText>(measured.map((m) => [m.doc.source, { text: m.text, format: m.format, error: m.error }]));
  assertWithinCostCap(job.spec, estimateItems(job.spec, job.model, items, texts));
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
    out.push({ source: d.source, uri: s3Uri(store.bucket, key), bytes: bytes.byteLength, ...(d.encoding && { encoding: d.encoding }) });
  }
  return out;
}

export type { SubmitTarget } from "./target.ts";

/**
 * Uploads the job's local documents, lists its `s3:` sources, measures what the job needs
 * measured (packs; the cost cap when asked) and submits: the job record, the initial manifest, one task per item.
 */
export async function submitLoadedJob(target: SubmitTarget, job: LoadedJob): Promise<JobRecord> {
  if (job.batch) return submitBatch(target, { spec: job.spec, model: job.model, batch: job.batch, overrides: job.overrides });
  const store = new ObjectStore(target.s3, target.bucket);
  let local = job.localDocuments;
  let chosen: JobItem[] | undefined;
  if (job.select && job.spec.packing !== "packed" && !job.spec.documents.some((d) => "s3" in d)) {
    // Items by document are known before upload: only the chosen items' documents are uploaded.
    chosen = selectItems(expandItems(job.spec, local.map((d) => ({ source: d.source, uri: d.absolutePath }))), job.select);
    const wanted = new Set(chosen.flatMap((i) => i.documents.map((d) => d.source)));
    local = local.filter((d) => wanted.has(d.source));
  }
  const documents = [...(await uploadDocuments(store, local)), ...(await resolveS3Documents(job.spec, target.s3))];
  // Packs are made over every document, then chosen: the cost cap is then checked on the chosen ones.
  const packedChoice = Boolean(job.select && !chosen);
  const { packs, quotaNeed } = await prepareSubmit(target.s3, job.spec, job.model, documents, { checkCostCap: !packedChoice && (target.checkCostCap ?? false), fallback: checkFallback(job.catalog, job.spec, job.model) });
  let items: JobItem[] | undefined;
  if (chosen) {
    const bySource = new Map(documents.map((d) => [d.source, d]));
    items = chosen.map((i) => ({ id: i.id, documents: i.documents.map((d) => bySource.get(d.source)!) }));
  } else if (job.select) {
    items = selectItems(expandItems(job.spec, documents, packs), job.select);
    if (target.checkCostCap) await checkCostCapOf(target.s3, job, items);
  }
  return submitJob(
    { store, sqs: target.sqs, queueUrl: target.queueUrl, maxReceives: target.maxReceives, coord: target.coord },
    {
      spec: job.spec,
      model: job.model,
      documents,
      outputSchema: job.outputSchema,
      packs,
      ...(items && { items }),
      ...(job.overrides && { overrides: job.overrides }),
      ...(quotaNeed && { quotaNeed }),
      batchModel: job.model,
      ...(target.batchLimits && { batchLimits: target.batchLimits }),
      ...(target.token !== undefined && { jobId: newJobId(job.spec.name, new Date(), target.token), trigger: `cli ${target.token}` }),
    },
  );
}

