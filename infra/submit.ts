import { deployment } from "../shared/settings.ts";
import type { Dynamo } from "./coord.ts";
import type { Bucket, FunctionPermission, LambdaFunction, Queue, Sst } from "./platform.ts";
import { INSTALLED_PACKAGES } from "../shared/bundle.ts";
import { RUNTIME, type Limits } from "./queue.ts";

declare const sst: Sst;

export const SUBMIT_HANDLER = "functions/submit.handler";

export interface SubmitDeps {
  runs: Bucket;
  tasks: Queue;
  coord: Dynamo;
  permissions: FunctionPermission[];
  /** Where Lambda puts an async event submit failed on (infra/submit-failures.ts): submit's role sends it. */
  failures: Queue;
}

/**
 * One submit function for every way a deployed job starts: schedules invoke it with
 * `{ job: "<name>" }`, inbox/ uploads with an S3 event. The job files ride along in the
 * package as `jobs/` (`$LAMBDA_TASK_ROOT/jobs/<name>.yaml`).
 */
export function createSubmit(d: SubmitDeps, s: Limits = deployment): LambdaFunction {
  return new sst.aws.Function("Submit", {
    handler: SUBMIT_HANDLER,
    description: "longdoc submit: expands a job into tasks",
    runtime: RUNTIME,
    timeout: `${s.submitTimeoutS} seconds`,
    // The table makes a retried schedule or upload find its job instead of starting a second one.
    link: [d.runs, d.tasks, d.coord],
    permissions: [...d.permissions, { actions: ["sqs:SendMessage"], resources: [d.failures.arn] }],
    copyFiles: [{ from: "jobs", to: "jobs" }],
    // Submit reads documents only to pack them (packing: packed).
    nodejs: { install: INSTALLED_PACKAGES },
  });
}
