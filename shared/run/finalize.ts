import { randomUUID } from "node:crypto";
import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { LongdocError } from "../errors.ts";
import type { EmfRecord } from "../metrics/emf.ts";
import { jobEndedMetrics } from "./finalize-metrics.ts";
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import type { Coordinator } from "./coord.ts";
import { buildManifest, inBatches, type ItemResult, type Manifest } from "./manifest.ts";
import type { JobNotifier } from "./notify.ts";
import { reportPlots } from "./plots.ts";
import { renderReport } from "./report.ts";
import { readReportContent } from "./report-content.ts";
import { keys, ObjectStore } from "./store.ts";

// The end of a job is its own step. The worker (or dead-letter recorder) that counts a job's last
// item only asks for it: a small message on the finalize queue. The finalizer then has an
// invocation of its own to read every result, write the manifest and the report, and tell that
// the job ended. It is idempotent: killed half-way and delivered again, it picks up the parts it
// wrote, writes the same manifest, and the job-ended event of a round goes out once.

/** What a finalize message carries. */
export interface FinalizeMessage {
  v: 1;
  kind: "finalize";
  jobId: string;
  bucket: string;
}

/** Asks for a job's end to be written: on AWS and in the local fleet, a message on the finalize queue. */
export interface Finalizer {
  request(job: { jobId: string; bucket: string }): Promise<void>;
}

export function parseFinalizeMessage(body: string): FinalizeMessage {
  let v: Partial<FinalizeMessage>;
  try {
    v = JSON.parse(body) as Partial<FinalizeMessage>;
  } catch {
    throw new LongdocError("internal", "finalize message is not JSON");
  }
  if (v?.v !== 1 || v.kind !== "finalize" || typeof v.jobId !== "string" || typeof v.bucket !== "string") {
    throw new LongdocError("internal", "finalize message lacks v:1, kind:finalize, jobId or bucket");
  }
  return v as FinalizeMessage;
}

/** The finalizer as a queue: one message per request (a duplicate costs a rebuild of the same manifest, never a second event). */
export function queueFinalizer(sqs: SQSClient, queueUrl: string): Finalizer {
  return {
    async request(job) {
      const body: FinalizeMessage = { v: 1, kind: "finalize", jobId: job.jobId, bucket: job.bucket };
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }));
    },
  };
}

/** The finalizer run in the caller's own invocation (tests and embedded uses without a finalize queue). */
export function inlineFinalizer(deps: Omit<FinalizeDeps, "s3"> & { s3: S3Client }): Finalizer {
  return { request: async (job) => void (await finalizeJob(deps, job)) };
}

export interface FinalizeDeps {
  s3: S3Client;
  /** Without it the event is sent whenever the manifest is final (no guard against a second finalizer). */
  coord?: Coordinator;
  notifier?: JobNotifier;
  log: Log;
  /** Names this finalizer in the event's claim. */
  owner?: string;
  /** How long a finalizer holds the event's claim; a killed one's claim lapses after it. */
  leaseMs?: number;
  /** Items per part (default PART_ITEMS). */
  partItems?: number;
  /** Parts built at once (default PARTS_IN_FLIGHT). */
  partsInFlight?: number;
  /** Where the job-ended metrics go (EMF; only the Lambda handler sets it). */
  metrics?: (record: EmfRecord) => void;
  /** Test hook: called after each part is stored, with its number (a test kills the finalizer here). */
  onPart?: (part: number) => void | Promise<void>;
  now?: () => number;
}

/** Items whose results one part holds: 1,000 results are a few hundred KB. */
export const PART_ITEMS = 1000;
/** Parts read at once; each reads its results RESULT_READS at a time. */
export const PARTS_IN_FLIGHT = 4;
const RESULT_READS = 32;
const DEFAULT_LEASE_MS = 5 * 60_000;

/** Where a finalize round keeps its parts until the manifest is final: runs/<jobId>/finalize/<round>/<n>.json. */
export const finalizeKeys = {
  prefix: (jobId: string) => `${keys.run(jobId)}finalize/`,
  part: (jobId: string, round: number, part: number) => `${keys.run(jobId)}finalize/${round}/${part}.json`,
};

/** A stored part: the results of items [from, from + count) of the job, all of them present. */
interface Part {
  v: 1;
  from: number;
  count: number;
  results: ItemResult[];
}

export interface FinalizeOutcome {
  manifest: Manifest;
  /** Parts read back from an earlier (killed) run of this finalizer, and parts built now. */
  partsReused: number;
  partsBuilt: number;
  /** What became of the event: sent now, sent before, held by another finalizer, or not due (the job is still running). */
  event: "sent" | "already-sent" | "held" | "not-final" | "no-notifier";
}

/**
 * The job's round: how many times `longdoc retry` re-opened it. Each round ends once, with its own
 * event; the round is read from the store, so every finalizer of the same end agrees on it.
 */
async function jobRound(store: ObjectStore, jobId: string): Promise<number> {
  return (await store.listKeys(keys.retriesPrefix(jobId))).filter((k) => /\/\d+\.json$/.test(k)).length;
}

/**
 * Writes a job's final manifest and report from its item results, and tells that it ended.
 * The results are read in parts of PART_ITEMS, PARTS_IN_FLIGHT parts at a time; a part whose
 * items all have results is stored, so a finalizer killed half-way and run again reads it back
 * instead of reading its results again. manifest.json and report.html are a pure function of the
 * results, so writing them again writes the same bytes.
 */
export async function finalizeJob(deps: FinalizeDeps, target: { jobId: string; bucket: string }, given?: { job?: JobRecord; results?: Map<string, ItemResult> }): Promise<FinalizeOutcome> {
  const store = new ObjectStore(deps.s3, target.bucket);
  const job = given?.job ?? (await store.getJson<JobRecord>(keys.job(target.jobId)));
  if (!job) throw new LongdocError("internal", `${keys.job(target.jobId)} is missing: nothing to finalize`);
  const round = await jobRound(store, job.jobId);
  let partsReused = 0;
  let partsBuilt = 0;
  let results = given?.results;
  if (!results) {
    const got = await readResultsInParts(deps, store, job, round);
    results = got.results;
    partsReused = got.reused;
    partsBuilt = got.built;
  }
  const [halted, cancelled] = await Promise.all([store.exists(keys.halt(job.jobId)), store.exists(keys.cancel(job.jobId))]);
  const manifest = buildManifest(job, results, { halted, cancelled });
  const content = { ...(await readReportContent(store, job, manifest)), plots: reportPlots(job, results) };
  await store.put(keys.report(job.jobId), renderReport(manifest, content), "text/html; charset=utf-8");
  await store.putJson(keys.manifest(job.jobId), manifest);
  const event = await announce(deps, store, job, manifest, round);
  // The parts served their purpose once the manifest is final: a later delivery rebuilds them (the same manifest).
  if (manifest.status !== "running") await removeParts(store, job.jobId).catch((e: unknown) => deps.log.warn({ jobId: job.jobId, error: String(e) }, "could not remove the finalizer's parts"));
  deps.log.info({ jobId: job.jobId, status: manifest.status, items: manifest.counts.total, round, partsReused, partsBuilt, event }, "job finalized");
  // Once per ended job: the delivery that sent its event reports it.
  if ((event === "sent" || event === "no-notifier") && manifest.status !== "running") deps.metrics?.(jobEndedMetrics(manifest));
  return { manifest, partsReused, partsBuilt, event };
}

/** The job-ended event, once per round: a claim in the coordination store keeps a second finalizer from sending it too. */
async function announce(deps: FinalizeDeps, store: ObjectStore, job: JobRecord, manifest: Manifest, round: number): Promise<FinalizeOutcome["event"]> {
  if (manifest.status === "running") return "not-final";
  if (!deps.notifier) return "no-notifier";
  if (!deps.coord) {
    await deps.notifier.jobEnded(store, job, manifest);
    return "sent";
  }
  const owner = deps.owner ?? `finalizer-${process.pid}-${randomUUID().slice(0, 8)}`;
  const claim = await deps.coord.claimJobEnd(job.jobId, round, owner, deps.leaseMs ?? DEFAULT_LEASE_MS, (deps.now ?? Date.now)());
  if (claim === "sent") return "already-sent";
  // Another finalizer is sending it now; if that one dies, its lease lapses and a redelivery of
  // this message (the caller reports it failed) sends it.
  if (claim === "held") return "held";
  await deps.notifier.jobEnded(store, job, manifest);
  await deps.coord.markJobEndSent(job.jobId, round);
  return "sent";
}

async function removeParts(store: ObjectStore, jobId: string): Promise<void> {
  await inBatches(await store.listKeys(finalizeKeys.prefix(jobId)), 16, (key) => store.delete(key));
}

async function readResultsInParts(deps: FinalizeDeps, store: ObjectStore, job: JobRecord, round: number): Promise<{ results: Map<string, ItemResult>; reused: number; built: number }> {
  const size = deps.partItems ?? PART_ITEMS;
  const parts = Array.from({ length: Math.ceil(job.items.length / size) }, (_, n) => n);
  const results = new Map<string, ItemResult>();
  let reused = 0;
  let built = 0;
  await inBatches(parts, deps.partsInFlight ?? PARTS_IN_FLIGHT, async (n) => {
    const key = finalizeKeys.part(job.jobId, round, n);
    const from = n * size;
    const items = job.items.slice(from, from + size);
    const stored = await store.getJson<Part>(key);
    if (stored && stored.from === from && stored.count === items.length && stored.results.length === items.length) {
      for (const r of stored.results) results.set(r.id, r);
      reused++;
      return;
    }
    const read = new Map<string, ItemResult>();
    await inBatches(items, RESULT_READS, async (item) => {
      const r = await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json"));
      if (r) read.set(item.id, r);
    });
    for (const [id, r] of read) results.set(id, r);
    // Only a whole part is kept: a result still to come must be read when it exists.
    if (read.size === items.length) {
      await store.put(key, JSON.stringify({ v: 1, from, count: items.length, results: items.map((i) => read.get(i.id)!) } satisfies Part), "application/json");
      built++;
      await deps.onPart?.(n);
    }
  });
  return { results, reused, built };
}

/**
 * The finalize queue's handler: one job per message. It keeps its message hidden in short steps
 * (a lease), so a finalizer that dies is retried within a lease, not after the queue's long
 * visibility timeout. A failure returns the message for another try; after the queue's
 * receive limit it waits in FinalizeDlq.
 */
export function createFinalizeHandler(get: () => Promise<FinalizeDeps & { sqs: SQSClient; queueUrl: string; leaseS: number }>) {
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const d = await get();
    const failures: SQSBatchResponse["batchItemFailures"] = [];
    for (const record of event.Records) {
      const hide = (seconds: number) =>
        d.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: d.queueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: seconds })).catch((e: unknown) => d.log.warn({ error: String(e) }, "cannot change the finalize message's visibility"));
      await hide(d.leaseS);
      const beat = setInterval(() => void hide(d.leaseS), Math.max(200, (d.leaseS * 1000) / 3));
      beat.unref();
      try {
        const msg = parseFinalizeMessage(record.body);
        const out = await finalizeJob(d, msg);
        // Another finalizer holds the event: come back once its lease could have lapsed (the heartbeat stops first, or it would shorten that).
        if (out.event === "held") {
          clearInterval(beat);
          await hide(Math.ceil((d.leaseMs ?? DEFAULT_LEASE_MS) / 1000));
          failures.push({ itemIdentifier: record.messageId });
        }
      } catch (e) {
        if (LongdocError.is(e) && !e.retryable && e.code === "internal" && /finalize message|nothing to finalize/.test(e.message)) {
          d.log.error({ messageId: record.messageId, error: e.message }, "finalize message dropped: it cannot succeed on another delivery");
          continue;
        }
        d.log.warn({ messageId: record.messageId, error: String(e) }, "finalize failed; the message comes back");
        clearInterval(beat);
        await hide(5);
        failures.push({ itemIdentifier: record.messageId });
      } finally {
        clearInterval(beat);
      }
    }
    return { batchItemFailures: failures };
  };
}
