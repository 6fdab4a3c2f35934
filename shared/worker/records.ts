import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { LongdocError } from "../errors.ts";
import type { Log } from "../log.ts";

/** The part of Lambda's context the handlers use. */
export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

/**
 * Not a failure: the task must wait (for quota, a backoff, or another delivery's claim). The
 * handler sets the message's visibility to `delayS` and reports it failed, so SQS holds it that
 * long and delivers it again; no Lambda sleeps meanwhile.
 */
export class ReturnToQueue extends Error {
  readonly delayS: number;
  /** For a backoff: the most the jittered wait could have been this time (it doubles per try). */
  readonly ceilingS?: number;
  constructor(delayS: number, reason: string, ceilingS?: number) {
    super(reason);
    this.name = "ReturnToQueue";
    // SQS takes whole seconds up to 12 hours.
    this.delayS = Math.min(43_200, Math.max(0, Math.ceil(delayS)));
    if (ceilingS !== undefined) this.ceilingS = ceilingS;
  }
}

/** Sets a delivered message's visibility (ChangeMessageVisibility). */
export type SetVisibility = (receiptHandle: string, seconds: number) => Promise<void>;

export type Lazy<T> = () => T | Promise<T>;

/** Deps are built once per container, on first use, so a cold start pays for them once. */
export function once<T>(make: Lazy<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= Promise.resolve().then(make));
}

export const receiveCount = (r: SQSRecord) => Number(r.attributes.ApproximateReceiveCount) || 1;

/**
 * Runs each record of an SQS batch and reports the ones that must come back, so one bad task
 * never makes SQS redeliver its neighbours (ReportBatchItemFailures). The decision is made per
 * record: a retryable error, or one longdoc does not know (an S3 hiccup), returns the message;
 * a non-retryable LongdocError (a body that is not a task, a job that does not exist) is logged
 * and the message removed, since delivering it again cannot succeed and would only cycle to the DLQ.
 */
export async function eachRecord(
  event: SQSEvent,
  log: Log,
  run: (r: SQSRecord) => Promise<unknown>,
  visibility?: { set: SetVisibility; unknownErrorDelayS: number },
): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  for (const record of event.Records) {
    const started = Date.now();
    try {
      await run(record);
    } catch (e) {
      if (e instanceof ReturnToQueue) {
        // heldMs: how long this delivery kept the worker before handing the task back.
        log.info({ messageId: record.messageId, delayS: e.delayS, ceilingS: e.ceilingS, heldMs: Date.now() - started, reason: e.message }, "task waits in the queue");
        await visibility?.set(record.receiptHandle, e.delayS).catch((err: unknown) => log.warn({ error: String(err) }, "cannot set the task's visibility"));
        batchItemFailures.push({ itemIdentifier: record.messageId });
        continue;
      }
      const message = e instanceof Error ? e.message : String(e);
      if (LongdocError.is(e) && !e.retryable) {
        log.error({ messageId: record.messageId, kind: e.code, error: message, body: record.body.slice(0, 200) }, "message dropped: it cannot succeed on another delivery");
        continue;
      }
      log.warn({ messageId: record.messageId, error: message }, "task returned to the queue");
      await visibility?.set(record.receiptHandle, visibility.unknownErrorDelayS).catch(() => undefined);
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}
