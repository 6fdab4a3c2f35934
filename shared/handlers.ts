import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { parseTaskMessage } from "./aws/queue.ts";
import { recordDeadTask, type DeadTaskDeps } from "./dead.ts";
import type { Log } from "./log.ts";
import { runTask, type WorkerDeps } from "./worker.ts";

/** The part of Lambda's context the handlers use. */
export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

type Lazy<T> = () => T | Promise<T>;

/** Deps are built once per container, on first use, so a cold start pays for them once. */
function once<T>(make: Lazy<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= Promise.resolve().then(make));
}

const receiveCount = (r: SQSRecord) => Number(r.attributes.ApproximateReceiveCount) || 1;

/**
 * Runs each record of an SQS batch and reports the ones that must come back, so one bad task
 * never makes SQS redeliver its neighbours (ReportBatchItemFailures).
 */
async function eachRecord(event: SQSEvent, log: Log, run: (r: SQSRecord) => Promise<unknown>): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  for (const record of event.Records) {
    try {
      await run(record);
    } catch (e) {
      log.warn({ messageId: record.messageId, error: e instanceof Error ? e.message : String(e) }, "task returned to the queue");
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}

export function createWorkerHandler(deps: Lazy<WorkerDeps>) {
  const get = once(deps);
  return async (event: SQSEvent, context: InvocationContext): Promise<SQSBatchResponse> => {
    const d = await get();
    const deadlineAt = Date.now() + context.getRemainingTimeInMillis();
    return eachRecord(event, d.log, (r) => runTask(d, parseTaskMessage(r.body), { receiveCount: receiveCount(r), deadlineAt }));
  };
}

/** Tasks that exhausted their deliveries land in the DLQ; record each as failed with its last error. */
export function createDeadLetterHandler(deps: Lazy<DeadTaskDeps>) {
  const get = once(deps);
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const d = await get();
    return eachRecord(event, d.log, (r) => recordDeadTask(d, parseTaskMessage(r.body), receiveCount(r)));
  };
}
