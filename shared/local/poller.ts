import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { InvocationContext } from "../worker/handlers.ts";

export interface PollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn?: string;
  handler: (event: SQSEvent, context: InvocationContext) => Promise<SQSBatchResponse | void>;
  batchSize: number;
  waitTimeS: number;
  /** The simulated Lambda timeout: the handler's context counts down from it. */
  functionTimeoutMs: number;
  signal: AbortSignal;
  onError?: (e: unknown) => void;
}

/** An SQS message as Lambda's event source mapping hands it to a function. */
export function toSqsRecord(m: Message, queueArn: string): SQSRecord {
  const a = m.Attributes ?? {};
  return {
    messageId: m.MessageId!,
    receiptHandle: m.ReceiptHandle!,
    body: m.Body ?? "",
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? "1",
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? "local",
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? "",
    eventSource: "aws:sqs",
    eventSourceARN: queueArn,
    awsRegion: "us-east-1",
  };
}

/**
 * A small stand-in for Lambda's SQS event source mapping: receives batches, invokes the handler
 * with a real SQSEvent, deletes what succeeded and leaves failures to come back after their
 * visibility timeout (as Lambda does with ReportBatchItemFailures). A thrown handler error
 * fails the whole batch, as on Lambda. Like Lambda, it never extends a message's visibility:
 * the worker's own heartbeat does.
 */
export async function runPoller(o: PollerOptions): Promise<void> {
  const arn = o.queueArn ?? `arn:aws:sqs:us-east-1:000000000000:${o.queueUrl.split("/").pop()}`;
  while (!o.signal.aborted) {
    let messages: Message[];
    try {
      const out = await o.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: o.queueUrl,
          MaxNumberOfMessages: o.batchSize,
          WaitTimeSeconds: o.waitTimeS,
          MessageSystemAttributeNames: ["All"],
        }),
      );
      messages = out.Messages ?? [];
    } catch (e) {
      if (o.signal.aborted) return;
      o.onError?.(e);
      // The queue is unreachable (the emulator stopped, a network fault): pause, never spin.
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (messages.length === 0) continue;
    // The receive is not aborted mid-poll: an abandoned long poll would still take a message on
    // the server and hide it for a visibility timeout. A poller told to stop hands it back instead.
    if (o.signal.aborted) {
      await o.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: o.queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
        }),
      );
      return;
    }
    const startedAt = Date.now();
    const context: InvocationContext = { getRemainingTimeInMillis: () => o.functionTimeoutMs - (Date.now() - startedAt) };
    let failed: Set<string>;
    try {
      const response = await o.handler({ Records: messages.map((m) => toSqsRecord(m, arn)) }, context);
      failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (e) {
      o.onError?.(e);
      failed = new Set(messages.map((m) => m.MessageId!));
    }
    const done = messages.filter((m) => !failed.has(m.MessageId!));
    if (done.length > 0) {
      await o.sqs.send(
        new DeleteMessageBatchCommand({ QueueUrl: o.queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }),
      );
    }
  }
}
