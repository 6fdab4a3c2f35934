/**
 * Submit of a `mode: batch` job: every call of every item planned exactly as the worker's answer
 * step would plan it (the same documents, read whole; the same caps; one call per question with
 * `calls: per-question`), one JSONL line per call, the lines packed into input files within the
 * provider's limits. An item's calls stay in one file. An item whose call cannot be planned (a
 * prompt too long, a document that does not read) or whose line is over the per-line limit runs
 * realtime: its task is queued as for any job, and its worker reports what is wrong.
 */
import { createHash } from "node:crypto";
import { loadDocument } from "../documents/index.ts";
import { parseS3Uri, type JobItem, type JobRecord } from "../job/record.ts";
import { priceFor, type ModelInfo } from "../model/catalog.ts";
import { planCall } from "../model/plan.ts";
import type { PromptDocument } from "../model/prompt.ts";
import type { Log } from "../log.ts";
import { ObjectStore, type ObjectStore as Store } from "../run/store.ts";
import { countTokens } from "../tokens/index.ts";
import { BATCH_PRICE_FACTOR } from "./support.ts";
import { callKey } from "../worker/journal.ts";
import { batchLine } from "./line.ts";
import { batchKeys, customId, type BatchRecord } from "../run/batch-records.ts";

/** The provider's limits per input file (docs/qwen-api.md §8). */
export interface BatchFileLimits {
  maxLines: number;
  maxBytes: number;
  maxLineBytes: number;
}
export const PROVIDER_LIMITS: BatchFileLimits = { maxLines: 50_000, maxBytes: 500 * 1024 * 1024, maxLineBytes: 6 * 1024 * 1024 };

export interface PreparedBatches {
  records: BatchRecord[];
  /** Items that run realtime instead, with why. */
  realtime: { itemId: string; reason: string }[];
}

/** Plans the job's lines and writes the input files and their records (state `pending`); the poller creates the batches. */
export async function prepareBatches(store: Store, job: JobRecord, model: ModelInfo, o: { limits?: Partial<BatchFileLimits>; log?: Pick<Log, "warn">; now?: () => Date } = {}): Promise<PreparedBatches> {
  const limits = { ...PROVIDER_LIMITS, ...o.limits };
  const realtime: PreparedBatches["realtime"] = [];
  const files: { lines: string[]; bytes: number; items: string[]; labels: Record<string, string>; worstCost: number }[] = [];
  let current: (typeof files)[number] | null = null;
  for (const item of job.items) {
    let lines: string[];
    const labels: Record<string, string> = {};
    const worst = { cost: 0 };
    try {
      lines = await itemLines(store, job, model, item, labels, worst);
    } catch (e) {
      realtime.push({ itemId: item.id, reason: `not batched: ${e instanceof Error ? e.message : String(e)}` });
      continue;
    }
    const big = lines.find((l) => Buffer.byteLength(l) + 1 > limits.maxLineBytes);
    if (big) {
      realtime.push({ itemId: item.id, reason: `not batched: a request of ${size(Buffer.byteLength(big) + 1)} is over the Batch API's ${size(limits.maxLineBytes)} per line; it ran realtime` });
      continue;
    }
    const bytes = lines.reduce((s, l) => s + Buffer.byteLength(l) + 1, 0);
    if (!current || current.lines.length + lines.length > limits.maxLines || current.bytes + bytes > limits.maxBytes) {
      current = { lines: [], bytes: 0, items: [], labels: {}, worstCost: 0 };
      files.push(current);
    }
    current.lines.push(...lines);
    current.bytes += bytes;
    current.items.push(item.id);
    current.worstCost += worst.cost;
    Object.assign(current.labels, labels);
  }
  const at = (o.now ?? (() => new Date()))().toISOString();
  const records: BatchRecord[] = [];
  for (const [index, f] of files.entries()) {
    if (!f.lines.length) continue;
    const inputKey = batchKeys.input(job.jobId, index);
    await store.put(inputKey, f.lines.join("\n") + "\n", "application/jsonl");
    const record: BatchRecord = {
      version: 1,
      jobId: job.jobId,
      index,
      inputKey,
      lines: f.lines.length,
      bytes: f.bytes,
      items: f.items,
      state: "pending",
      fileId: null,
      batchId: null,
      counts: { total: f.lines.length, completed: 0, failed: 0 },
      outputFileId: null,
      errorFileId: null,
      error: null,
      createdAt: at,
      updatedAt: at,
      ...(Object.keys(f.labels).length ? { labels: f.labels } : {}),
      worstCost: Math.round(f.worstCost * 1e9) / 1e9,
      appliedAt: null,
    };
    await store.putJson(batchKeys.record(job.jobId, index), record);
    records.push(record);
  }
  if (records.length) await store.putJson(batchKeys.open(job.jobId), { jobId: job.jobId, at });
  for (const r of realtime) {
    o.log?.warn({ jobId: job.jobId, itemId: r.itemId }, r.reason);
    await store.putJson(batchKeys.realtime(job.jobId, r.itemId), { reason: r.reason });
  }
  return { records, realtime };
}

/** The item's calls as the answer step plans them (shared/worker/answer.ts), one line each. */
async function itemLines(store: Store, job: JobRecord, model: ModelInfo, item: JobItem, labels: Record<string, string>, worst: { cost: number }): Promise<string[]> {
  if (item.request) throw new Error("an OpenAI Batch input line runs as its own request");
  const docs = await Promise.all(item.documents.map((d) => readDocument(store, d, job.limits.maxDocumentBytes)));
  const spec = job.spec;
  const questions = spec.calls === "per-question" && spec.questions ? spec.questions.map((q) => [q]) : [spec.questions];
  return questions.map((qs) => {
    const plan = planCall({ ...spec, questions: qs }, model, docs);
    const label = questions.length > 1 ? qs![0]!.id : null;
    const key = callKey(plan, label);
    if (label !== null) labels[key] = label;
    // What the call could cost at most, at the batch price: the cost cap reserves it before the batch is created.
    const output = plan.maxOutputTokens + (plan.thinkingBudget ?? 0);
    worst.cost += priceFor(model, { inputTokens: plan.inputTokens, outputTokens: output, cachedTokens: 0 }).cost * BATCH_PRICE_FACTOR;
    return JSON.stringify(batchLine(customId(item.id, key), job.model, plan, job.outputSchema));
  });
}

async function readDocument(store: Store, doc: { source: string; uri: string }, maxBytes: number): Promise<PromptDocument> {
  const { bucket, key } = parseS3Uri(doc.uri);
  const bytes = await new ObjectStore(store.s3, bucket).getBytes(key);
  if (!bytes) throw new Error(`${doc.source}: not found at ${doc.uri}`);
  const loaded = await loadDocument({ bytes, name: doc.source }, { maxBytes });
  return { source: doc.source, text: loaded.text, tokens: countTokens(loaded.text), sha256: createHash("sha256").update(loaded.text).digest("hex") };
}

const size = (bytes: number) => (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${bytes} bytes`);
