import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { LocalStack } from "./stack.ts";

/** Messages waiting plus in flight on the task queue. */
export async function queueDepth(stack: Pick<LocalStack, "sqs" | "queueUrl">): Promise<number> {
  const out = await stack.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: stack.queueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
  );
  const a = out.Attributes ?? {};
  return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0);
}
