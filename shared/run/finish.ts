import type { JobRecord } from "../job/record.ts";
import { currentManifest, readResults, type ItemResult, type Manifest } from "./manifest.ts";
import { reportPlots } from "./plots.ts";
import { renderReport } from "./report.ts";
import { readReportContent } from "./report-content.ts";
import { keys, type ObjectStore } from "./store.ts";
import type { JobNotifier } from "./notify.ts";

/**
 * Writes the final manifest and report; called once, by the worker whose item was the job's last
 * (the coordinator's counter says so), or by a cancel. With a notifier, then tells that the job
 * ended (one event; see notify.ts).
 */
export async function writeFinalManifest(store: ObjectStore, job: JobRecord, results?: Map<string, ItemResult>, notifier?: JobNotifier): Promise<Manifest> {
  const finished = results ?? (await readResults(store, job));
  const manifest = await currentManifest(store, job, finished);
  const content = { ...(await readReportContent(store, job, manifest)), plots: reportPlots(job, finished) };
  await store.put(keys.report(job.jobId), renderReport(manifest, content), "text/html; charset=utf-8");
  await store.putJson(keys.manifest(job.jobId), manifest);
  if (notifier && manifest.status !== "running") await notifier.jobEnded(store, job, manifest);
  return manifest;
}
