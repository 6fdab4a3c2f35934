import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { keys, ObjectStore } from "../aws/store.ts";
import { getModel, loadCatalog } from "../catalog.ts";
import { readModelEndpoint } from "../config.ts";
import { createWorkerDeps } from "../deps.ts";
import { LongdocError } from "../errors.ts";
import { createDeadLetterHandler, createWorkerHandler } from "../handlers.ts";
import { loadJobFile } from "../job/load.ts";
import { s3Uri, type ItemDocument, type JobRecord } from "../job/record.ts";
import { resolveLocalDocuments, resolveOutputSchema } from "../job/resolve.ts";
import type { Log } from "../log.ts";
import { finishedItemIds, type Manifest } from "../manifest.ts";
import type { ModelClient } from "../model/client.ts";
import { settings } from "../settings.ts";
import { startSimulator } from "../sim/index.ts";
import { submitJob } from "../submit.ts";
import { queueDepth } from "./inspect.ts";
import { runPoller } from "./poller.ts";
import { prepareSubmit } from "../presubmit.ts";
import { startLocalStack, type LocalStack } from "./stack.ts";

export interface Progress {
  jobId: string;
  total: number;
  finished: number;
  elapsedMs: number;
}

export interface LocalRunOptions {
  jobFile: string;
  /** Runs are mirrored to <outDir>/<jobId>/. */
  outDir: string;
  workers: number;
  env: Record<string, string | undefined>;
  log: Log;
  /** Keep the emulator's state here (SQLite); in memory when unset. */
  dataDir?: string;
  /** An already running stack (tests); otherwise one is started and stopped. */
  stack?: LocalStack;
  /** Use this model client instead of one built from the environment (tests inject faults here). */
  model?: ModelClient;
  /** In-delivery retries of transient model faults. */
  retry?: { retries: number; minTimeoutMs: number };
  onSubmitted?: (job: JobRecord, ctx: { stack: LocalStack; baseURL: string }) => void | Promise<void>;
  onProgress?: (p: Progress) => void;
  /** Give up (exit with what is there) after this long. */
  timeoutMs?: number;
}

export interface LocalRunResult {
  job: JobRecord;
  manifest: Manifest;
  outDir: string;
  usedSimulator: boolean;
}

/**
 * A job run end to end on this machine: the embedded SQS/S3 emulator, the same submit and worker
 * code as on AWS, a poller standing in for Lambda, and the Qwen simulator unless a key is set.
 */
export async function runLocalJob(o: LocalRunOptions): Promise<LocalRunResult> {
  const spec = await loadJobFile(o.jobFile);
  const catalog = loadCatalog(o.env.LONGDOC_CATALOG);
  const model = getModel(catalog, spec.model);
  const endpoint = readModelEndpoint(o.env);
  const localDocs = await resolveLocalDocuments(spec, o.jobFile);
  if (spec.documents.some((d) => "s3" in d)) {
    throw new LongdocError("usage", `${o.jobFile}: s3 document sources need a deployed stack (use 'longdoc submit'); local runs read path: sources`);
  }
  const outputSchema = await resolveOutputSchema(spec, o.jobFile);

  const stack = o.stack ?? (await startLocalStack({ dataDir: o.dataDir }));
  const sim = endpoint.apiKey ? undefined : await startSimulator({ port: 0 });
  const baseURL = sim ? sim.baseURL : endpoint.baseURL!;
  const abort = new AbortController();
  try {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const documents: ItemDocument[] = [];
    for (const d of localDocs) {
      const bytes = await readFile(d.absolutePath);
      const key = `inputs/${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}/${path.basename(d.absolutePath)}`;
      await store.put(key, bytes, "application/octet-stream");
      documents.push({ source: d.source, uri: s3Uri(stack.bucket, key) });
    }
    const { packs } = await prepareSubmit(stack.s3, spec, model, documents);
    const job = await submitJob(
      { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives },
      { spec, model, documents, outputSchema, packs },
    );
    await o.onSubmitted?.(job, { stack, baseURL });

    const deps = createWorkerDeps({
      s3: stack.s3,
      catalog,
      log: o.log,
      apiKey: endpoint.apiKey ?? "sk-local-simulator",
      baseURL,
      model: o.model,
      retry: o.retry,
    });
    const worker = createWorkerHandler(() => deps);
    const deadLetters = createDeadLetterHandler(() => ({ s3: stack.s3, log: o.log }));
    const queueArn = async (url: string) =>
      (await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
    const common = { sqs: stack.sqs, waitTimeS: settings.local.pollWaitS, functionTimeoutMs: settings.workerTimeoutS * 1000, signal: abort.signal, onError: (e: unknown) => o.log.error({ error: String(e) }, "poller error") };
    const pollers = [
      ...Array.from({ length: Math.max(1, o.workers) }, async () =>
        runPoller({ ...common, queueUrl: stack.queueUrl, queueArn: await queueArn(stack.queueUrl), handler: worker, batchSize: settings.workerBatchSize }),
      ),
      runPoller({ ...common, queueUrl: stack.dlqUrl, queueArn: await queueArn(stack.dlqUrl), handler: deadLetters, batchSize: 10 }),
    ];

    const startedAt = Date.now();
    let manifest: Manifest | undefined;
    let drainUntil: number | undefined;
    for (;;) {
      const finished = (await finishedItemIds(store, job.jobId)).size;
      o.onProgress?.({ jobId: job.jobId, total: job.items.length, finished, elapsedMs: Date.now() - startedAt });
      if (finished === job.items.length) {
        manifest = await store.getJson<Manifest>(keys.manifest(job.jobId));
        // Drain what is still queued (a duplicate delivery, tasks of an earlier interrupted run)
        // so nothing is left behind, but never wait long for it.
        if (manifest && manifest.status !== "running") {
          drainUntil ??= Date.now() + 3 * stack.visibilityTimeoutS * 1000;
          if ((await queueDepth(stack)) === 0 || Date.now() > drainUntil) break;
        }
      }
      if (o.timeoutMs !== undefined && Date.now() - startedAt > o.timeoutMs) {
        manifest = await store.getJson<Manifest>(keys.manifest(job.jobId));
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    abort.abort();
    await Promise.allSettled(pollers);
    const dir = await mirrorRun(store, job.jobId, o.outDir);
    return { job, manifest: manifest!, outDir: dir, usedSimulator: sim !== undefined };
  } finally {
    abort.abort();
    await sim?.stop();
    if (!o.stack) await stack.stop();
  }
}

/** Copies runs/<jobId>/ from the bucket to <outDir>/<jobId>/, keeping the layout. */
export async function mirrorRun(store: ObjectStore, jobId: string, outDir: string): Promise<string> {
  const prefix = `runs/${jobId}/`;
  const target = path.resolve(outDir, jobId);
  for (const key of await store.listKeys(prefix)) {
    const file = path.join(target, key.slice(prefix.length));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, (await store.getBytes(key)) ?? new Uint8Array());
  }
  return target;
}
