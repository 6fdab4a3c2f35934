import type { JobRecord } from "../job/record.ts";
import { currentManifest, finishedItemIds, readResults, type ItemResult, type Manifest } from "./manifest.ts";
import { renderReport } from "./report.ts";
import { keys, type ObjectStore } from "./store.ts";

/**
 * Called after an item's result is written. Only a worker whose listing shows every item
 * finished writes the manifest; results are written once and never change, so every such
 * writer builds the same manifest and racing writers cannot leave a stale one behind.
 * Needs no conditional writes (the local emulator has none).
 */
export async function writeManifestIfDone(store: ObjectStore, job: JobRecord): Promise<Manifest | null> {
  const finished = await finishedItemIds(store, job.jobId);
  if (job.items.some((item) => !finished.has(item.id))) return null;
  return writeFinalManifest(store, job, await readResults(store, job, finished));
}

/** Writes the final manifest and report; called once, by the worker whose item was the job's last (the coordinator's counter says so). */
export async function writeFinalManifest(store: ObjectStore, job: JobRecord, results?: Map<string, ItemResult>): Promise<Manifest> {
  const manifest = await currentManifest(store, job, results);
  await store.put(keys.report(job.jobId), renderReport(manifest), "text/html; charset=utf-8");
  await store.putJson(keys.manifest(job.jobId), manifest);
  return manifest;
}
