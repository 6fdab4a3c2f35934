import type { Bucket, FunctionPermission, Input, Sst } from "./platform.ts";

declare const sst: Sst;

/** The one bucket: `runs/<jobId>/...` written by submit and workers, `inbox/<job>/...` uploads, `inputs/...` documents `longdoc submit` uploaded. */
export function createStorage(): { runs: Bucket } {
  // Linked as Resource.Runs (`.name`) to submit only: a bucket link grants every S3 action on every key.
  return { runs: new sst.aws.Bucket("Runs") };
}

/** `<bucket ARN><suffix>`, whether the ARN is known now (a string) or at deploy time (an Output). */
const under = (arn: Input<string>, suffix: string): Input<string> => (typeof arn === "string" ? `${arn}${suffix}` : arn.apply((a) => `${a}${suffix}`));

/** The only keys a function deletes: an item's open attempt records and partial traces (shared/run/store.ts `keys.attempt`). */
export const ATTEMPT_FILES = "/runs/*/items/*/attempts/*";

/**
 * What a function that runs items needs of the runs bucket, by prefix: it reads documents where
 * they are put (`inputs/`, `inbox/`) and the run (`runs/`), and writes only under `runs/`.
 * ListBucket (key names, no contents) lets it list a run's results and attempts, and makes S3
 * answer 404 rather than 403 for a missing key, which the worker relies on (a result not yet written).
 * It deletes only what it leaves behind under an item's `attempts/` (an attempt's open record and
 * partial trace once the attempt is closed), unless `deleteAttempts` is false.
 */
export function runsAccess(runs: Bucket, reads: ("runs" | "inputs" | "inbox")[] = ["runs", "inputs", "inbox"], o: { deleteAttempts?: boolean } = {}): FunctionPermission[] {
  return [
    { actions: ["s3:ListBucket"], resources: [runs.arn] },
    { actions: ["s3:GetObject"], resources: reads.map((p) => under(runs.arn, `/${p}/*`)) },
    { actions: ["s3:PutObject", "s3:AbortMultipartUpload"], resources: [under(runs.arn, "/runs/*")] },
    ...(o.deleteAttempts === false ? [] : [{ actions: ["s3:DeleteObject"], resources: [under(runs.arn, ATTEMPT_FILES)] }]),
  ];
}
