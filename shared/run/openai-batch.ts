import type { JobRecord } from "../job/record.ts";
import type { Manifest } from "./manifest.ts";

/** What the batch object is made of: a run's progress (progress.ts), by the fields it reads. */
type BatchProgress = Pick<Manifest, "status" | "startedAt" | "finishedAt" | "counts"> & { cancelled: boolean };

/**
 * A batch-file job's progress as OpenAI's batch object (the fields a script written for OpenAI's
 * Batch API reads): `status` in OpenAI's states, `request_counts`, Unix-second timestamps.
 * Runs end `completed` whatever their lines' outcome, as OpenAI's do; a halted run (billing,
 * key) is `failed`, a cancelled one `cancelled`.
 */
export interface OpenAIBatchObject {
  id: string;
  object: "batch";
  endpoint: "/v1/chat/completions";
  input_file: string;
  completion_window: "24h";
  status: "in_progress" | "cancelling" | "cancelled" | "completed" | "failed";
  created_at: number;
  in_progress_at: number;
  completed_at: number | null;
  failed_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
}

const seconds = (iso: string | null) => (iso ? Math.floor(Date.parse(iso) / 1000) : null);

export function openaiBatchObject(p: BatchProgress, job: Pick<JobRecord, "jobId" | "batch" | "submittedAt">): OpenAIBatchObject | null {
  if (!job.batch) return null;
  const status: OpenAIBatchObject["status"] =
    p.status === "running" || p.status === "interrupted" ? (p.cancelled ? "cancelling" : "in_progress") : p.status === "halted" ? "failed" : p.status === "cancelled" ? "cancelled" : "completed";
  const end = seconds(p.finishedAt);
  return {
    id: job.jobId,
    object: "batch",
    endpoint: "/v1/chat/completions",
    input_file: job.batch.file,
    completion_window: "24h",
    status,
    created_at: seconds(job.submittedAt)!,
    in_progress_at: seconds(p.startedAt) ?? seconds(job.submittedAt)!,
    completed_at: status === "completed" ? end : null,
    failed_at: status === "failed" ? end : null,
    cancelled_at: status === "cancelled" ? end : null,
    request_counts: { total: p.counts.total, completed: p.counts.succeeded, failed: p.counts.failed + p.counts.skipped },
  };
}
