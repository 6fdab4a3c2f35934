import { deployment } from "../shared/settings.ts";
import type { LambdaFunction, Output, Queue, Sst } from "./platform.ts";
import type { Limits } from "./queue.ts";

declare const sst: Sst;

/**
 * The slice of Pulumi's AWS provider used here (`aws.lambda.FunctionEventInvokeConfig`,
 * @pulumi/aws lambda/functionEventInvokeConfig.ts): SST's Function has no option for an
 * asynchronous invocation's destinations, and SST exposes the provider as the global `aws`.
 */
export interface FunctionEventInvokeConfigArgs {
  functionName: Output<string> | string;
  /** 0-2: Lambda's own retries of an async event whose invocation failed. */
  maximumRetryAttempts?: number;
  /** 60-21600 s: how long Lambda keeps trying an async event. */
  maximumEventAgeInSeconds?: number;
  destinationConfig?: { onFailure?: { destination: Output<string> | string } };
}

declare const aws: { lambda: { FunctionEventInvokeConfig: new (name: string, args: FunctionEventInvokeConfigArgs) => unknown } };

export const SUBMIT_FAILURES = "SubmitFailures";

/** Lambda's default and maximum retries of a failed async invocation. */
export const SUBMIT_ASYNC_RETRIES = 2;

/**
 * Schedules and inbox uploads invoke submit asynchronously. When submit itself fails (a job file
 * it cannot read, S3 or SQS refusing), Lambda retries twice and then sends the event, with the
 * error, to SubmitFailures (kept `dlqRetentionS`), instead of leaving it only in the logs. The
 * function's role sends it, so submit gets `sqs:SendMessage` on that queue (see createSubmit).
 */
export function createSubmitFailures(s: Limits = deployment): Queue {
  return new sst.aws.Queue(SUBMIT_FAILURES, { transform: { queue: { messageRetentionSeconds: s.dlqRetentionS } } });
}

export function routeSubmitFailures(submit: LambdaFunction, failures: Queue): void {
  new aws.lambda.FunctionEventInvokeConfig("SubmitAsyncInvoke", {
    functionName: submit.name,
    maximumRetryAttempts: SUBMIT_ASYNC_RETRIES,
    destinationConfig: { onFailure: { destination: failures.arn } },
  });
}
