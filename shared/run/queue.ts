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

const SQS_BATCH = 10;

/** Sends tasks with SendMessageBatch, ten at a time, re-sending entries SQS reports as failed. */
export async function sendTasks(sqs: SQSClient, queueUrl: string, tasks: TaskMessage[], attempts = 5): Promise<void> {
  for (let i = 0; i < tasks.length; i += SQS_BATCH) {
    let pending = tasks.slice(i, i + SQS_BATCH).map((t, j) => ({ Id: String(j), MessageBody: JSON.stringify(t) }));
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
}
