import { ChangeMessageVisibilityCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { parseTaskMessage } from "../run/queue.ts";
import type { QueueDeps } from "./deps.ts";
import { eachRecord, once, receiveCount, type InvocationContext, type Lazy } from "./records.ts";
import type { WorkerDeps } from "./context.ts";
import { runTask } from "./lifecycle.ts";

export type { InvocationContext } from "./records.ts";

export function createWorkerHandler(deps: Lazy<WorkerDeps & QueueDeps>) {
  const get = once(deps);
  return async (event: SQSEvent, context: InvocationContext): Promise<SQSBatchResponse> => {
    const d = await get();
    const deadlineAt = Date.now() + context.getRemainingTimeInMillis();
    const setVisibility = async (receiptHandle: string, seconds: number) => {
      await d.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: d.queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }));
    };
    return eachRecord(
      event,
      d.log,
      (r) =>
        runTask(d, parseTaskMessage(r.body), {
          receiveCount: receiveCount(r),
          deadlineAt,
          extendVisibility: (seconds) => setVisibility(r.receiptHandle, seconds),
        }),
      // An error longdoc did not foresee (an S3 or network hiccup) comes back after a short pause.
      {
        set: setVisibility,
        unknownErrorDelayS: 5,
        requeue: async (body, delayS) => {
          await d.sqs.send(new SendMessageCommand({ QueueUrl: d.queueUrl, MessageBody: body, DelaySeconds: delayS }));
        },
      },
    );
  };
}
