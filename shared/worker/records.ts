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
  /** A wait for the item's place in the quota, not a failure: it must not count toward the dead-letter limit. */
  readonly wait: boolean;
  constructor(delayS: number, reason: string, ceilingS?: number, o: { wait?: boolean } = {}) {
    super(reason);
    this.name = "ReturnToQueue";
    // SQS takes whole seconds up to 12 hours.
    this.delayS = Math.min(MAX_VISIBILITY_S, Math.max(0, Math.ceil(delayS)));
    if (ceilingS !== undefined) this.ceilingS = ceilingS;
    this.wait = o.wait ?? false;
  }
}

/** SQS's longest visibility timeout (12 hours): a longer wait takes one more delivery per 12 hours. */
export const MAX_VISIBILITY_S = 43_200;
/** SQS's longest message delay (15 minutes). */
export const MAX_DELAY_S = 900;

/** Sends a copy of a message's body that becomes visible after `delayS` (SendMessage with DelaySeconds, at most 15 minutes). */
export type Requeue = (body: string, delayS: number) => Promise<void>;

/**
 * A wait for quota of up to 15 minutes goes back as a fresh copy of the task, delayed until its
 * time, and the delivered message is removed: a fresh message starts its receive count at zero,
 * so waiting never brings a task closer to the dead-letter queue. (A longer wait keeps the message
 * hidden instead: one receive per 12 hours of it, far under the dead-letter limit.) False when the
 * copy could not be sent: the message then waits as any other.
 */
async function requeued(requeue: Requeue, record: SQSRecord, delayS: number, log: Log): Promise<boolean> {
  try {
    await requeue(record.body, delayS);
    return true;
  } catch (err) {
    log.warn({ messageId: record.messageId, error: String(err) }, "cannot send the waiting task's copy; it waits under its visibility instead");
    return false;
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
  visibility?: { set: SetVisibility; unknownErrorDelayS: number; requeue?: Requeue },
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
        if (e.wait && e.delayS <= MAX_DELAY_S && visibility?.requeue && (await requeued(visibility.requeue, record, e.delayS, log))) continue;
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
