import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Coordinator } from "../run/coord.ts";

/** Where a job (or a batch file) is submitted: the stack's bucket, queue and coordination table. */
export interface SubmitTarget {
  s3: S3Client;
  sqs: SQSClient;
  bucket: string;
  queueUrl: string;
  /** Deliveries before a task goes to the DLQ (the queue's redrive policy). */
  maxReceives: number;
  /** The coordination table: makes submit idempotent per job id and marks a submit cut short. */
  coord?: Coordinator;
  /** Refuse before queueing when the job's input alone is estimated over its cap (local runs, whose documents are on this machine anyway). */
  checkCostCap?: boolean;
  /** `mode: batch`: input file limits below the provider's (tests split a job with them). */
  batchLimits?: Partial<import("../batch/prepare.ts").BatchFileLimits>;
  /** A token naming this submission: the same token gives the same job, never a second one. */
  token?: string;
}
