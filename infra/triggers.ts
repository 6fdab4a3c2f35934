import type { Bucket, LambdaFunction } from "./platform.ts";
import { componentNameClashes, pascal, type JobWiring } from "./jobs.ts";

/** Where uploads for a job land: `inbox/<job-name>/...` starts a run of `jobs/<job-name>.yaml`. */
export const inboxPrefix = (job: string) => `inbox/${job}/`;

/**
 * Uploads under `inbox/<name>/` of the runs bucket invoke submit with the S3 event, for each
 * job with `trigger: upload`; one notification rule per such job, so uploads for any other
 * job start nothing. Nothing is wired when no job asks for uploads.
 */
export function createTriggers(jobs: JobWiring[], runs: Bucket, submit: LambdaFunction): { job: string; prefix: string }[] {
  const uploads = jobs.filter((j) => j.trigger === "upload");
  if (uploads.length === 0) return [];
  // readJobs refuses these already; callers that build the list by hand get the same answer.
  const clashes = componentNameClashes(uploads);
  if (clashes.length > 0) throw new Error(clashes.join("\n"));
  runs.notify({
    notifications: uploads.map((j) => ({
      name: `Inbox${pascal(j.name)}`,
      // The shared Submit function, by ARN (notify takes a handler, FunctionArgs or an ARN).
      function: submit.arn,
      events: ["s3:ObjectCreated:*"],
      filterPrefix: inboxPrefix(j.name),
    })),
  });
  return uploads.map((j) => ({ job: j.name, prefix: inboxPrefix(j.name) }));
}
