import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { toSqsRecord } from "../../shared/local/poller.ts";
import { silentLog } from "../../shared/log.ts";
import { loadCatalog, type Catalog } from "../../shared/model/catalog.ts";
import { createCoordinator, type Coordinator } from "../../shared/run/coord.ts";
import { createWorkerDeps } from "../../shared/worker/deps.ts";
import { createWorkerHandler } from "../../shared/worker/handlers.ts";
import type { WorkerTiming } from "../../shared/worker/context.ts";
import type { Loopback } from "./loopback.ts";

/**
 * One worker Lambda container on the loopback stack (the real handler, its deps built on first
 * use), and a delivery: the next task the queue hands out, with the time the invocation has left.
 */
export function loopbackWorker(loop: Loopback, o: { catalog?: Catalog; baseURL?: string; timing?: Partial<WorkerTiming>; coord?: Coordinator } = {}) {
  const handler = createWorkerHandler(() =>
    createWorkerDeps({
      s3: loop.stack.s3,
      sqs: loop.stack.sqs,
      queueUrl: loop.stack.queueUrl,
      coord: o.coord ?? createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table),
      catalog: o.catalog ?? loadCatalog(),
      log: silentLog,
      apiKey: "sk-test",
      baseURL: o.baseURL ?? loop.sim.baseURL,
      ...(o.timing && { timing: o.timing }),
    }),
  );
  return async (remainingMs: number) => {
    const { Messages } = await loop.stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: loop.stack.queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 5, MessageSystemAttributeNames: ["All"] }));
    if (!Messages?.length) throw new Error("no task came from the queue within 5 s");
    return handler({ Records: [toSqsRecord(Messages[0]!, "arn:aws:sqs:us-east-1:000000000000:longdoc-tasks")] }, { getRemainingTimeInMillis: () => remainingMs });
  };
}
