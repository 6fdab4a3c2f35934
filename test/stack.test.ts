import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { expect, it } from "vitest";
import { startLocalStack } from "../shared/local/stack.ts";

it("reopens a persisted state whose queues were made with other settings, keeping its messages", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "longdoc-state-"));
  const first = await startLocalStack({ dataDir: dir, visibilityTimeoutS: 2, maxReceives: 3 });
  await first.stop();
  const again = await startLocalStack({ dataDir: dir, visibilityTimeoutS: 7, maxReceives: 5 });
  try {
    const { Attributes } = await again.sqs.send(new GetQueueAttributesCommand({ QueueUrl: again.queueUrl, AttributeNames: ["VisibilityTimeout", "RedrivePolicy"] }));
    expect(Attributes?.VisibilityTimeout).toBe("7");
    expect(JSON.parse(Attributes!.RedrivePolicy!).maxReceiveCount).toBe(5);
  } finally {
    await again.stop();
  }
});
