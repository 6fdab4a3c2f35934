import type { Bucket, Sst } from "./platform.ts";

declare const sst: Sst;

/** The one bucket: `runs/<jobId>/...` written by submit and workers, `inbox/<job>/...` uploads. */
export function createStorage(): { runs: Bucket } {
  // Linked as Resource.Runs (`.name`).
  return { runs: new sst.aws.Bucket("Runs") };
}
