import { deployment, type Deployment } from "../shared/settings.ts";
import { INSTALLED_PACKAGES } from "../shared/bundle.ts";
import type { Dynamo } from "./coord.ts";
import type { Bucket, FunctionPermission, Queue, Secret, Sst } from "./platform.ts";
import { publisherGrant, type JobEvents } from "./events.ts";
import { runsAccess } from "./storage.ts";
import { finalizeGrant } from "./finalize-grant.ts";

/** The settings with their numbers widened, so tests can pass changed copies. */
export type Limits = { readonly [K in keyof Deployment]: Deployment[K] extends number ? number : Deployment[K] };

declare const sst: Sst;

export const WORKER_HANDLER = "functions/worker.handler";
export const DLQ_HANDLER = "functions/dlq.handler";
export const RUNTIME = "nodejs24.x";


/**
 * Refuses settings AWS would reject or that break delivery, before anything is created:
 * Lambda allows 1-900 s; SQS allows a 0-43200 s visibility timeout and 1-1000 receives; the
 * SQS scaling config takes 2-1000; more than 10 records per batch needs a batching window,
 * which settings does not carry. AWS asks for a visibility timeout of at least 6 x the
 * function timeout (Lambda DG, services-sqs-configure).
 */
export function checkQueueSettings(s: Limits): void {
  const problems: string[] = [];
  const whole = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!whole(s.workerTimeoutS, 1, 900)) problems.push(`workerTimeoutS is ${s.workerTimeoutS}; Lambda allows 1-900`);
  if (!whole(s.submitTimeoutS, 1, 900)) problems.push(`submitTimeoutS is ${s.submitTimeoutS}; Lambda allows 1-900`);
  if (!whole(s.workerMemoryMb, 128, 10240)) problems.push(`workerMemoryMb is ${s.workerMemoryMb}; Lambda allows 128-10240`);
  if (!whole(s.queueVisibilityTimeoutS, 0, 43200)) problems.push(`queueVisibilityTimeoutS is ${s.queueVisibilityTimeoutS}; SQS allows 0-43200`);
  if (s.queueVisibilityTimeoutS < 6 * s.workerTimeoutS)
    problems.push(`queueVisibilityTimeoutS (${s.queueVisibilityTimeoutS}) is below 6 x workerTimeoutS (${6 * s.workerTimeoutS})`);
  if (s.queueVisibilityTimeoutS < 6 * s.submitTimeoutS)
    problems.push(`queueVisibilityTimeoutS (${s.queueVisibilityTimeoutS}) is below 6 x submitTimeoutS (${6 * s.submitTimeoutS}), which the dead-letter recorder uses`);
  if (!whole(s.maxReceives, 1, 1000)) problems.push(`maxReceives is ${s.maxReceives}; SQS allows 1-1000`);
  if (!whole(s.workerBatchSize, 1, 10)) problems.push(`workerBatchSize is ${s.workerBatchSize}; above 10 SQS needs a batching window, which settings has none of`);
  if (!whole(s.maxWorkers, 2, 1000)) problems.push(`maxWorkers is ${s.maxWorkers}; the SQS scaling config takes 2-1000`);
  if (!whole(s.dlqRetentionS, 60, 1_209_600)) problems.push(`dlqRetentionS is ${s.dlqRetentionS}; SQS keeps messages 60-1209600 s`);
  if (!whole(s.taskRetentionS, 60, 1_209_600)) problems.push(`taskRetentionS is ${s.taskRetentionS}; SQS keeps messages 60-1209600 s`);
  if (!whole(s.finalizeTimeoutS, 1, 900)) problems.push(`finalizeTimeoutS is ${s.finalizeTimeoutS}; Lambda allows 1-900`);
  if (!whole(s.finalizeMaxReceives, 1, 1000)) problems.push(`finalizeMaxReceives is ${s.finalizeMaxReceives}; SQS allows 1-1000`);
  if (problems.length) throw new Error(`shared/settings.ts: ${problems.join("; ")}`);
}

export interface QueueDeps {
  runs: Bucket;
  apiKey: Secret;
  /** The coordination table: account quota, item claims, cost ledger, finish counter. */
  coord: Dynamo;
  /** Worker environment, e.g. QWEN_BASE_URL when set at deploy time. */
  environment: Record<string, string>;
  /** Read access to document buckets outside the app. */
  permissions: FunctionPermission[];
  /** The job-finished topic and the webhook secret: the worker and the dead-letter recorder may each finish a job. */
  events: JobEvents;
  /** Where the worker or recorder that counts a job's last item asks for its end (infra/finalize.ts). */
  finalize: Queue;
}

/**
 * Tasks queue → worker Lambdas, one long model call per record, failures reported per record;
 * after `maxReceives` deliveries a task moves to TasksDlq, whose subscriber records it failed.
 */
export function createQueues(d: QueueDeps, s: Limits = deployment): { tasks: Queue; dlq: Queue } {
  checkQueueSettings(s);
  const events = publisherGrant(d.events);
  const finalize = finalizeGrant(d.finalize);

  // No handler reads the DLQ by name: its subscriber gets the records in its event. Its
  // visibility timeout is the main queue's, well above 6 x the recorder's timeout, so a
  // recorder that fails retries slowly until the retention period ends.
  const dlq = new sst.aws.Queue("TasksDlq", {
    visibilityTimeout: `${s.queueVisibilityTimeoutS} seconds`,
    transform: { queue: { messageRetentionSeconds: s.dlqRetentionS } },
  });

  // Linked as Resource.Tasks (`.url`). A task waits for quota in the queue: it is kept as long as SQS allows.
  const tasks = new sst.aws.Queue("Tasks", {
    visibilityTimeout: `${s.queueVisibilityTimeoutS} seconds`,
    dlq: { queue: dlq.arn, retry: s.maxReceives },
    transform: { queue: { messageRetentionSeconds: s.taskRetentionS } },
  });

  tasks.subscribe(
    {
      handler: WORKER_HANDLER,
      description: "longdoc worker: one task, one whole-document model call",
      runtime: RUNTIME,
      timeout: `${s.workerTimeoutS} seconds`,
      memory: `${s.workerMemoryMb} MB`,
      // Not linked to its own queue (a link grants every SQS action): it changes the visibility
      // of the messages it holds and sends a delayed copy of a task that waits for quota, to make
      // waits happen in the queue. Nor to the bucket: it reads documents and the run, and writes
      // under runs/ only.
      link: [d.apiKey, d.coord, events.link],
      environment: { ...d.environment, ...events.environment, ...finalize.environment, LONGDOC_TASKS_URL: tasks.url, LONGDOC_BUCKET: d.runs.name },
      permissions: [...d.permissions, ...runsAccess(d.runs), { actions: ["sqs:ChangeMessageVisibility", "sqs:SendMessage"], resources: [tasks.arn] }, events.permission, finalize.permission],
      // Split: the PDF, DOCX, XLSX and CSV readers (behind import()) load when a task needs them,
      // not on every cold start (bench:cold-start measures both builds).
      nodejs: { install: INSTALLED_PACKAGES, splitting: true },
    },
    {
      batch: { size: s.workerBatchSize, partialResponses: true },
      // SST has no option for this; it is Lambda's ScalingConfig on the event source mapping.
      transform: { eventSourceMapping: { scalingConfig: { maximumConcurrency: s.maxWorkers } } },
    },
  );

  dlq.subscribe(
    {
      handler: DLQ_HANDLER,
      description: "longdoc dead letters: records tasks that used up their deliveries as failed",
      runtime: RUNTIME,
      timeout: `${s.submitTimeoutS} seconds`,
      // It reads the run (job, attempts) and writes the item's result and the manifest: runs/ only.
      link: [d.coord, events.link],
      environment: { ...events.environment, ...finalize.environment, LONGDOC_BUCKET: d.runs.name },
      permissions: [...runsAccess(d.runs, ["runs"]), events.permission, finalize.permission],
    },
    // Batch size stays at SST's default (10); the handler reports failures per record.
    { batch: { partialResponses: true } },
  );

  return { tasks, dlq };
}
