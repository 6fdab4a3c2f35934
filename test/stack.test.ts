import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { expect, it } from "vitest";
import { queueDepth } from "../shared/local/inspect.ts";
import { startLocalStack } from "../shared/local/stack.ts";

it("reopens a persisted state whose queues were made with other settings, keeping its messages", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "longdoc-state-"));
  const first = await startLocalStack({ dataDir: dir, visibilityTimeoutS: 2, maxReceives: 3 });
  await first.sqs.send(new SendMessageCommand({ QueueUrl: first.queueUrl, MessageBody: "left over from an interrupted run" }));
  await first.stop();
  const again = await startLocalStack({ dataDir: dir, visibilityTimeoutS: 7, maxReceives: 5 });
  try {
    const { Attributes } = await again.sqs.send(new GetQueueAttributesCommand({ QueueUrl: again.queueUrl, AttributeNames: ["VisibilityTimeout", "RedrivePolicy"] }));
    expect(Attributes?.VisibilityTimeout).toBe("7");
    expect(JSON.parse(Attributes!.RedrivePolicy!).maxReceiveCount).toBe(5);
    expect(await queueDepth(again)).toBe(1);
  } finally {
    await again.stop();
  }
});
