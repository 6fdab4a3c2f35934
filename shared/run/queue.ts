import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { LongdocError } from "../errors.ts";

/** What an SQS message carries: ids and S3 keys, never document text. */
export interface TaskMessage {
  v: 1;
  jobId: string;
  itemId: string;
  bucket: string;
  documents: string[];
  /** Set by `longdoc retry --max-output-tokens N`: the answer cap for this item's calls, over the job's maxOutputTokens. */
  maxOutputTokens?: number;
}

export function parseTaskMessage(body: string): TaskMessage {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new LongdocError("internal", "task message is not JSON");
  }
  const t = value as Partial<TaskMessage>;
  if (t?.v !== 1 || typeof t.jobId !== "string" || typeof t.itemId !== "string" || typeof t.bucket !== "string" || !Array.isArray(t.documents)) {
    throw new LongdocError("internal", "task message lacks v:1, jobId, itemId, bucket or documents");
  }
  if (t.maxOutputTokens !== undefined && !(Number.isInteger(t.maxOutputTokens) && t.maxOutputTokens > 0)) {
    throw new LongdocError("internal", "task message: maxOutputTokens must be a positive integer");
  }
  return t as TaskMessage;
}

/** Tasks per SendMessageBatch: SQS's maximum. */
export const SQS_BATCH = 10;
/** SendMessageBatch calls in flight by default. */
const LANES = 16;

/** Sends one batch of at most ten tasks, re-sending entries SQS reports as failed. */
export async function sendTaskBatch(sqs: SQSClient, queueUrl: string, batch: TaskMessage[], attempts = 5): Promise<void> {
  let pending = batch.map((t, j) => ({ Id: String(j), MessageBody: JSON.stringify(t) }));
  for (let attempt = 1; pending.length > 0; attempt++) {
    const out = await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: pending }));
    const failed = new Set((out.Failed ?? []).map((f) => f.Id));
    if (failed.size > 0 && attempt >= attempts) {
      const first = out.Failed?.[0];
      throw new LongdocError("internal", `SQS refused ${failed.size} task(s): ${first?.Code} ${first?.Message ?? ""}`.trim());
    }
    pending = pending.filter((e) => failed.has(e.Id));
  }
}

/**
 * Sends tasks with SendMessageBatch, ten at a time, `lanes` batches in flight; `onSent` hears of
 * each batch (by its index) once SQS took all of it. The first error stops every lane from
 * starting another batch, and is thrown once those in flight have settled.
 */
export async function sendTasks(
  sqs: SQSClient,
  queueUrl: string,
  tasks: TaskMessage[],
  o: { lanes?: number; skip?: Set<number>; onSent?: (batch: number) => Promise<void> } = {},
): Promise<void> {
  const batches = Array.from({ length: Math.ceil(tasks.length / SQS_BATCH) }, (_, b) => b).filter((b) => !o.skip?.has(b));
  let next = 0;
  let error: unknown;
  const lane = async () => {
    while (error === undefined && next < batches.length) {
      const b = batches[next++]!;
      try {
        await sendTaskBatch(sqs, queueUrl, tasks.slice(b * SQS_BATCH, (b + 1) * SQS_BATCH));
        await o.onSent?.(b);
      } catch (e) {
        error ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.lanes ?? LANES, batches.length) }, lane));
  if (error !== undefined) throw error;
}
