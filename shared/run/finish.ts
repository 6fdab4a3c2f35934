import type { JobRecord } from "../job/record.ts";
import { currentManifest, type ItemResult, type Manifest } from "./manifest.ts";
import { renderReport } from "./report.ts";
import { keys, type ObjectStore } from "./store.ts";

/** Writes the final manifest and report; called once, by the worker whose item was the job's last (the coordinator's counter says so). */
export async function writeFinalManifest(store: ObjectStore, job: JobRecord, results?: Map<string, ItemResult>): Promise<Manifest> {
  const manifest = await currentManifest(store, job, results);
  await store.put(keys.report(job.jobId), renderReport(manifest), "text/html; charset=utf-8");
  await store.putJson(keys.manifest(job.jobId), manifest);
  return manifest;
}
