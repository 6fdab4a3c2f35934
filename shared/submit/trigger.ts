import path from "node:path";
import type { S3Event } from "aws-lambda";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { S3Client } from "@aws-sdk/client-s3";
import { ObjectStore } from "../run/store.ts";
import { getModel, type Catalog } from "../model/catalog.ts";
import { checkBatchSupport } from "../batch/support.ts";
import { LongdocError } from "../errors.ts";
import { loadJobFile } from "../job/load.ts";
import { s3Uri, type ItemDocument, type JobRecord } from "../job/record.ts";
import { resolveOutputSchema } from "../job/resolve.ts";
import { resolveS3Documents } from "./sources.ts";
import type { Log } from "../log.ts";
import { prepareSubmit } from "./prepare.ts";
import { submitJob } from "./submit.ts";
import { newJobId } from "../job/expand.ts";
import type { Coordinator } from "../run/coord.ts";

export interface TriggerDeps {
  s3: S3Client;
  sqs: SQSClient;
  bucket: string;
  queueUrl: string;
  /** The folder the job files were bundled into. */
  jobsDir: string;
  catalog: Catalog;
  maxReceives: number;
  /** Makes a retried event find its job instead of starting a second one. */
  coord: Coordinator;
  log: Log;
}

/**
 * A scheduled run names its job and, from EventBridge Scheduler's `<aws.scheduler.scheduled-time>`,
 * the time it was due; an upload event carries the S3 object that landed.
 */
export type TriggerEvent = { job: string; scheduledTime?: string } | S3Event;

/**
 * The deployed entry to submit: a schedule (`{job}`) submits the job over its `s3:` sources; an
 * upload under inbox/<job-name>/ submits that job over the uploaded object alone.
 */
export async function submitFromEvent(deps: TriggerDeps, event: TriggerEvent): Promise<JobRecord[]> {
  const store = new ObjectStore(deps.s3, deps.bucket);
  const submit = async (name: string, documents: ItemDocument[] | null, trigger: "schedule" | "upload", origin: { at: Date; token: string } | null) => {
    if (!/^[a-z0-9-]+$/.test(name)) throw new LongdocError("job_invalid", `'${name}' is not a job name`);
    const file = path.join(deps.jobsDir, `${name}.yaml`);
    const spec = await loadJobFile(file);
    if (trigger === "upload" && spec.trigger !== "upload") {
      throw new LongdocError("job_invalid", `${file}: an upload arrived under inbox/${name}/ but the job has no 'trigger: upload'`);
    }
    const model = getModel(deps.catalog, spec.model);
    checkBatchSupport(spec, model, file);
    const docs = documents ?? (await resolveS3Documents(spec, deps.s3));
    const outputSchema = await resolveOutputSchema(spec, file);
    const { packs } = await prepareSubmit(deps.s3, spec, model, docs, { checkCostCap: false });
    const jobId = origin ? newJobId(name, origin.at, origin.token) : undefined;
    const job = await submitJob(
      // Lambda retries a failed async invocation with the same event, hence the same job id: it resumes.
      { store, sqs: deps.sqs, queueUrl: deps.queueUrl, maxReceives: deps.maxReceives, coord: deps.coord, resumable: jobId !== undefined },
      { spec, model, batchModel: model, documents: docs, outputSchema, packs, ...(jobId && { jobId, trigger: `${trigger} ${origin!.token}` }) },
    );
    deps.log.info({ jobId: job.jobId, trigger, items: job.items.length }, "job submitted");
    return job;
  };

  if ("job" in event) {
    const at = event.scheduledTime ? new Date(event.scheduledTime) : null;
    const origin = at && !Number.isNaN(at.getTime()) ? { at, token: `schedule ${at.toISOString()}` } : null;
    return [await submit(event.job, null, "schedule", origin)];
  }
  const jobs: JobRecord[] = [];
  for (const record of event.Records) {
    // S3 event keys are URL-encoded with '+' for spaces.
    const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, " "));
    // `s`: an uploaded name may hold a newline; it is still an upload to start a run over.
    const m = /^inbox\/([^/]+)\/.+[^/]$/s.exec(key);
    if (!m) {
      deps.log.warn({ key }, "upload outside inbox/<job-name>/; ignored");
      continue;
    }
    const uri = s3Uri(record.s3.bucket.name, key);
    const at = new Date(record.eventTime);
    const origin = { at: Number.isNaN(at.getTime()) ? new Date() : at, token: `upload ${uri} ${record.s3.object.eTag ?? record.s3.object.sequencer ?? ""}` };
    const size = record.s3.object.size;
    jobs.push(await submit(m[1]!, [{ source: uri, uri, ...(typeof size === "number" && { bytes: size }) }], "upload", origin));
  }
  return jobs;
}
