import type { SQSClient } from "@aws-sdk/client-sqs";
import { sendTasks, SQS_BATCH, type TaskMessage } from "../run/queue.ts";
import { keys, type ObjectStore } from "../run/store.ts";
import { LongdocError } from "../errors.ts";
import { expandItems, newJobId } from "../job/expand.ts";
import type { ItemDocument, JobItem, JobRecord } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { initialManifest } from "../run/manifest.ts";
import type { Coordinator } from "../run/coord.ts";
import { deployment } from "../settings.ts";
import { costCap, type ModelInfo } from "../model/catalog.ts";
import { assertQuotaFitsRetention, quotaNeedFloor, type QuotaNeed } from "./quota-need.ts";
import { prepareBatches, type BatchFileLimits } from "../batch/prepare.ts";

export interface SubmitDeps {
  store: ObjectStore;
  sqs: SQSClient;
  queueUrl: string;
  /** With it, submit is idempotent per job id and a submit cut short is marked failed (its tasks then never call the model). */
  coord?: Coordinator;
  now?: () => Date;
  maxReceives: number;
  maxAttempts?: number;
  /**
   * The caller retries a failed submit with the same job id (a Lambda's async retries): a send
   * that fails leaves the job `sending` for the retry to resume, instead of marking it failed.
   */
  resumable?: boolean;
  /** SendMessageBatch calls in flight (default deployment.submitSendLanes). */
  lanes?: number;
}

export interface SubmitInput {
  spec: JobSpec;
  /** The catalog's default quota for the model, used when the job sets none, and the currency it is priced in (USD when not given). */
  model: { rpm: number; tpm: number; currency?: string; region?: string };
  documents: ItemDocument[];
  outputSchema: Record<string, unknown> | null;
  /** For `packing: packed`: the documents grouped into calls (see pack.ts). */
  packs?: ItemDocument[][];
  jobId?: string;
  /** What started the job, for the coordination record (`cli`, `schedule <time>`, `upload <key> <etag>`). */
  trigger?: string;
  /** Items made already (an OpenAI Batch file's lines, see submit/batch.ts) instead of expanded from `documents`. */
  items?: JobItem[];
  batch?: JobRecord["batch"];
  overrides?: JobRecord["overrides"];
  /** The job's quota need measured from its documents (prepare.ts); without it, the floor counted from the job's settings is checked. */
  quotaNeed?: QuotaNeed;
  /** `mode: batch`: the model as the worker plans its calls (the batch lines are planned at submit). */
  batchModel?: ModelInfo;
  /** `mode: batch`: the input file limits, when lower than the provider's (tests). */
  batchLimits?: Partial<BatchFileLimits>;
}

/** SQS refuses a message body over 256 KiB (a larger quota must be asked for): checked before any is sent. */
export const MAX_TASK_BYTES = 256 * 1024;
/** Items per job: job.json holds them all and every worker reads it (the same bound as a batch file's lines). */
export const MAX_ITEMS_PER_JOB = 50_000;

/**
 * Expands a job into items, records it at runs/<jobId>/job.json with an initial manifest, and
 * queues one task per item. The job record is written before any task is sent, so a worker
 * never sees a task whose job it cannot read.
 *
 * With the coordination store it scales and resumes: the job is marked `sending` before its first
 * task leaves, so workers run tasks as they arrive (no task is handed back to wait for the rest);
 * tasks go out ten per SendMessageBatch, `lanes` batches in flight, and each batch sent is marked
 * in the store. A submit killed part-way and run again with the same job id (a retried schedule or
 * upload event) reads the job record it wrote and sends only the batches not marked.
 */
export async function submitJob(deps: SubmitDeps, input: SubmitInput): Promise<JobRecord> {
  const { spec } = input;
  const model = { currency: "USD", region: "ap-southeast-1", ...input.model };
  if (!input.items && input.documents.length === 0) throw new LongdocError("document_missing", `job '${spec.name}': its documents matched no files`);
  const now = (deps.now ?? (() => new Date()))();
  const jobId = input.jobId ?? newJobId(spec.name, now);
  const record: JobRecord = {
    version: 1,
    jobId,
    name: spec.name,
    model: spec.model,
    submittedAt: now.toISOString(),
    spec,
    outputSchema: input.outputSchema,
    limits: {
      concurrency: spec.limits.concurrency ?? 8,
      rpm: spec.limits.rpm ?? model.rpm,
      tpm: spec.limits.tpm ?? model.tpm,
      maxCostUsd: model.currency === "USD" ? costCap(spec, model) : null,
      maxCost: costCap(spec, model),
      maxDocumentBytes: spec.limits.maxDocumentBytes ?? 100 * 1024 * 1024,
    },
    currency: model.currency,
    region: model.region,
    maxReceives: deps.maxReceives,
    maxAttempts: deps.maxAttempts ?? deployment.maxAttempts,
    items: input.items ?? expandItems(spec, input.documents, input.packs),
    ...(input.batch && { batch: input.batch }),
    ...(input.overrides && { overrides: input.overrides }),
  };
  const tasks: TaskMessage[] = record.items.map((item) => ({
    v: 1,
    jobId,
    itemId: item.id,
    bucket: deps.store.bucket,
    documents: item.documents.map((d) => d.uri),
  }));
  if (record.items.length > MAX_ITEMS_PER_JOB) {
    throw new LongdocError("job_invalid", `job '${input.spec.name}': ${record.items.length} items, over the ${MAX_ITEMS_PER_JOB.toLocaleString("en-US")} a job may hold; split its documents across jobs (or pack small ones: packing: packed); nothing was queued`);
  }
  const tooBig = tasks.find((t) => Buffer.byteLength(JSON.stringify(t)) > MAX_TASK_BYTES);
  if (tooBig) throw new LongdocError("job_invalid", `item ${tooBig.itemId}: its task message is over SQS's ${MAX_TASK_BYTES / 1024} KiB (too many documents in one item); nothing was queued`);
  // A task waits for quota in the queue: a job that needs the quota longer than the queue keeps a task would lose tasks.
  const need = input.quotaNeed ?? (isModelInfo(input.model) ? quotaNeedFloor(spec, input.model, record.items.length) : null);
  if (need) assertQuotaFitsRetention(spec.name, need);

  let sending = record;
  let resumed = false;
  if (deps.coord) {
    const reg = await deps.coord.registerJob(jobId, { trigger: input.trigger ?? "cli", items: record.items.length, createdAt: record.submittedAt });
    if (!reg.created && reg.record.state !== "submitting") {
      const existing = await deps.store.getJson<JobRecord>(keys.job(jobId));
      // A submit killed while sending: go on with the job it recorded (a new listing may differ).
      if (existing && reg.record.state === "sending") {
        sending = existing;
        resumed = true;
      } else if (existing) {
        // The same event again after the job was queued: queue nothing twice.
        return existing;
      }
    }
  }
  if (!resumed) {
    await deps.store.putJson(keys.job(jobId), record);
    await deps.store.putJson(keys.manifest(jobId), initialManifest(record));
    // Visible before the first task leaves: a worker meeting one runs it rather than hand it back.
    await deps.coord?.setJobState(jobId, "sending");
  }
  const coord = deps.coord;
  const all: TaskMessage[] = resumed ? sending.items.map((item) => ({ v: 1, jobId, itemId: item.id, bucket: deps.store.bucket, documents: item.documents.map((d) => d.uri) })) : tasks;
  try {
    const queued = await batchOrQueue(deps, record, input, all);
    const skip = coord && resumed ? await coord.sentTaskBatches(jobId, Math.ceil(queued.length / SQS_BATCH)) : undefined;
    await sendTasks(deps.sqs, deps.queueUrl, queued, {
      lanes: deps.lanes ?? deployment.submitSendLanes,
      skip,
      onSent: coord ? (b) => coord.markTaskBatchesSent(jobId, [b]) : undefined,
    });
  } catch (e) {
    // A retry will resume: leave the job `sending`. Otherwise some tasks may be queued, and the
    // workers skip them without a call once the job is marked failed.
    if (!deps.resumable) await deps.coord?.setJobState(jobId, "failed").catch(() => undefined);
    throw e;
  }
  await deps.coord?.setJobState(jobId, "submitted");
  return sending;
}

const isModelInfo = (m: SubmitInput["model"]): m is ModelInfo & SubmitInput["model"] =>
  typeof (m as Partial<ModelInfo>).contextTokens === "number" && typeof (m as Partial<ModelInfo>).maxThinkingBudget === "number";
/**
 * `mode: batch`: the items' calls become batch lines (the poller creates the batches and queues
 * each item's task once its lines are answered); only the items that cannot be batched are queued now.
 */
async function batchOrQueue(deps: SubmitDeps, record: JobRecord, input: SubmitInput, tasks: TaskMessage[]): Promise<TaskMessage[]> {
  if (record.spec.mode !== "batch") return tasks;
  if (!input.batchModel) throw new LongdocError("internal", `job '${record.name}': mode: batch needs the model's catalog entry at submit`);
  const prepared = await prepareBatches(deps.store, record, input.batchModel, { limits: input.batchLimits, now: deps.now });
  const realtime = new Set(prepared.realtime.map((r) => r.itemId));
  return tasks.filter((t) => realtime.has(t.itemId));
}
