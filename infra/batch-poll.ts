import type { Dynamo } from "./coord.ts";
import type { Bucket, FunctionPermission, Input, Queue, Secret, Sst } from "./platform.ts";
import { RUNTIME } from "./queue.ts";

declare const sst: Sst;

export const BATCH_POLL_HANDLER = "functions/batch-poll.handler";
/** The reference asks for a poll every 1-2 minutes at most; a batch takes hours, so a few minutes loses nothing. */
export const BATCH_POLL_SCHEDULE = "rate(5 minutes)";
export const BATCH_POLL_TIMEOUT_S = 240;

export interface BatchPollDeps {
  runs: Bucket;
  tasks: Queue;
  apiKey: Secret;
  coord: Dynamo;
  /** Worker environment, e.g. QWEN_BASE_URL when set at deploy time: the poller asks the same endpoint. */
  environment: Record<string, string>;
}

const under = (arn: Input<string>, suffix: string): Input<string> => (typeof arn === "string" ? `${arn}${suffix}` : arn.apply((a) => `${a}${suffix}`));

/**
 * `mode: batch`: a scheduled function (EventBridge Scheduler through SST's CronV2) that polls the
 * provider's batches of every open job (shared/batch/poll.ts). It reads the runs and the open-job
 * markers, writes under runs/ only, removes a job's marker once its batches are applied, queues
 * the items' tasks, and counts their attempts in the coordination table; nothing else.
 */
export function createBatchPoller(d: BatchPollDeps): { schedule: string; handler: string; permissions: FunctionPermission[] } {
  const permissions: FunctionPermission[] = [
    { actions: ["s3:ListBucket"], resources: [d.runs.arn] },
    { actions: ["s3:GetObject"], resources: [under(d.runs.arn, "/runs/*"), under(d.runs.arn, "/batches-open/*")] },
    { actions: ["s3:PutObject"], resources: [under(d.runs.arn, "/runs/*")] },
    { actions: ["s3:DeleteObject"], resources: [under(d.runs.arn, "/batches-open/*")] },
    { actions: ["sqs:SendMessage"], resources: [d.tasks.arn] },
  ];
  new sst.aws.CronV2("BatchPoll", {
    function: {
      handler: BATCH_POLL_HANDLER,
      description: "longdoc batch poller: reads the provider's batches of open jobs and queues their answered items",
      runtime: RUNTIME,
      timeout: `${BATCH_POLL_TIMEOUT_S} seconds`,
      // The API key for the Files and Batch APIs; the table for attempt counts and the cost ledger.
      link: [d.apiKey, d.coord],
      environment: { ...d.environment, LONGDOC_TASKS_URL: d.tasks.url, LONGDOC_BUCKET: d.runs.name },
      permissions,
    },
    schedule: BATCH_POLL_SCHEDULE,
  });
  return { schedule: BATCH_POLL_SCHEDULE, handler: BATCH_POLL_HANDLER, permissions };
}
