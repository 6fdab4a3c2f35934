import { deployment } from "../shared/settings.ts";
import type { Dynamo } from "./coord.ts";
import { publisherGrant, type JobEvents } from "./events.ts";
import type { Bucket, Queue, Sst } from "./platform.ts";
import { RUNTIME, type Limits } from "./queue.ts";
import { runsAccess } from "./storage.ts";

declare const sst: Sst;

export const FINALIZE_HANDLER = "functions/finalize.handler";

export interface FinalizeDeps {
  runs: Bucket;
  coord: Dynamo;
  events: JobEvents;
}

/**
 * The end of a job, as its own step: the worker (or dead-letter recorder) that counts a job's last
 * item sends one message to Finalize; its subscriber has a whole invocation to read every result
 * and write the manifest, the report and the job-ended event (shared/run/finalize.ts). A failed
 * finalizer's message comes back (the handler keeps it hidden in short leases, so a killed one
 * returns within a lease); after `finalizeMaxReceives` deliveries it waits in FinalizeDlq.
 */
export function createFinalize(d: FinalizeDeps, s: Limits = deployment): { finalize: Queue; finalizeDlq: Queue } {
  const events = publisherGrant(d.events);
  const finalizeDlq = new sst.aws.Queue("FinalizeDlq", { transform: { queue: { messageRetentionSeconds: s.dlqRetentionS } } });
  const finalize = new sst.aws.Queue("Finalize", {
    visibilityTimeout: `${6 * s.finalizeTimeoutS} seconds`,
    dlq: { queue: finalizeDlq.arn, retry: s.finalizeMaxReceives },
  });
  finalize.subscribe(
    {
      handler: FINALIZE_HANDLER,
      description: "longdoc finalizer: writes a finished job's manifest, report and job-ended event",
      runtime: RUNTIME,
      timeout: `${s.finalizeTimeoutS} seconds`,
      memory: `${s.workerMemoryMb} MB`,
      // It reads the run and writes under runs/ only; of its queue it only changes the visibility
      // of the message it holds (a queue link would grant every SQS action).
      link: [d.coord, events.link],
      environment: { ...events.environment, LONGDOC_BUCKET: d.runs.name, LONGDOC_FINALIZE_URL: finalize.url },
      // It deletes only its own parts, once the manifest they were built for is written.
      permissions: [
        ...runsAccess(d.runs, ["runs"], { deleteAttempts: false }),
        { actions: ["s3:DeleteObject"], resources: [finalizePartsArn(d.runs)] },
        { actions: ["sqs:ChangeMessageVisibility"], resources: [finalize.arn] },
        events.permission,
      ],
    },
    { batch: { size: 1, partialResponses: true } },
  );
  return { finalize, finalizeDlq };
}

/** The finalizer's parts (shared/run/finalize.ts `finalizeKeys`): the only objects it deletes. */
const finalizePartsArn = (runs: Bucket) => (typeof runs.arn === "string" ? `${runs.arn}/runs/*/finalize/*` : runs.arn.apply((a) => `${a}/runs/*/finalize/*`));

