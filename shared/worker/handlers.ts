import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { parseTaskMessage } from "../run/queue.ts";
import { eachRecord, once, receiveCount, type InvocationContext, type Lazy } from "./records.ts";
import { runTask, type WorkerDeps } from "./worker.ts";

export type { InvocationContext } from "./records.ts";

export function createWorkerHandler(deps: Lazy<WorkerDeps>) {
  const get = once(deps);
  return async (event: SQSEvent, context: InvocationContext): Promise<SQSBatchResponse> => {
    const d = await get();
    const deadlineAt = Date.now() + context.getRemainingTimeInMillis();
    return eachRecord(event, d.log, (r) => runTask(d, parseTaskMessage(r.body), { receiveCount: receiveCount(r), deadlineAt }));
  };
}
