import { readFile, stat } from "node:fs/promises";
import { toErrorRecord } from "../errors.ts";
import { MAX_BATCH_FILE_BYTES, parseBatchText, planBatchCall, type BatchFile } from "../job/batch.ts";
import { newJobId } from "../job/expand.ts";
import { JobFileError } from "../job/load.ts";
import { s3Uri, type JobItem, type JobRecord } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { getModel, priceFor, type Catalog, type ModelInfo } from "../model/catalog.ts";
import { inBatches } from "../run/manifest.ts";
import { keys, ObjectStore } from "../run/store.ts";
import { estimateQuota, type ItemEstimate, type JobEstimate } from "./estimate.ts";
import { pacingLimits } from "./quota-need.ts";
import { submitJob } from "./submit.ts";
import type { SubmitTarget } from "./target.ts";

/** A batch file read and checked: the job it runs as, its model, its lines. */
export interface LoadedBatch {
  spec: JobSpec;
  model: ModelInfo;
  batch: BatchFile;
  overrides?: JobRecord["overrides"];
}

/** Where a batch is submitted: a job's target; the cost-cap check does not apply (no documents to price before the run). */
export type BatchTarget = Omit<SubmitTarget, "checkCostCap">;

/** Reads and checks an OpenAI Batch input file as a job: every line, and its model against the catalog. */
export async function loadBatch(file: string, catalog: Catalog): Promise<LoadedBatch> {
  const size = (await stat(file)).size;
  if (size > MAX_BATCH_FILE_BYTES) {
    throw new JobFileError([{ file, line: 1, field: "(file)", message: `the batch file is ${(size / 1024 / 1024).toFixed(1)} MiB; an OpenAI Batch input file holds at most ${MAX_BATCH_FILE_BYTES / 1024 / 1024} MiB` }]);
  }
  const batch = parseBatchText(await readFile(file, "utf8"), file);
  let model;
  try {
    model = getModel(catalog, batch.spec.model);
  } catch (e) {
    throw new JobFileError([{ file, line: batch.requests[0]!.line, field: "body.model", message: (e as Error).message }]);
  }
  return { spec: batch.spec, model, batch };
}

/**
 * Submits a batch file: each line's request goes to runs/<jobId>/requests/<custom_id>.json, then
 * the job record (one item per line, its id the custom_id) and one task per item, as any job.
 */
export async function submitBatch(target: BatchTarget, job: LoadedBatch): Promise<JobRecord> {
  const store = new ObjectStore(target.s3, target.bucket);
  const jobId = newJobId(job.spec.name, new Date(), target.token);
  const items: JobItem[] = job.batch.requests.map((r) => ({ id: r.customId, documents: [], request: s3Uri(store.bucket, keys.request(jobId, r.customId)) }));
  // Requests before the job record: a worker never sees an item whose request it cannot read.
  await inBatches(job.batch.requests, 16, (r) => store.putJson(keys.request(jobId, r.customId), r));
  return submitJob(
    { store, sqs: target.sqs, queueUrl: target.queueUrl, maxReceives: target.maxReceives, coord: target.coord },
    {
      spec: job.spec,
      model: job.model,
      documents: [],
      outputSchema: null,
      items,
      batch: { file: job.batch.file, requests: job.batch.requests.length },
      ...(job.overrides && { overrides: job.overrides }),
      jobId,
      ...(target.token !== undefined && { trigger: `cli ${target.token}` }),
    },
  );
}

/** `longdoc estimate` of a batch file: each line's exact prompt tokens, tier and cost, as the worker will send it. */
export function estimateBatch(job: LoadedBatch): JobEstimate {
  const { model, spec } = job;
  const round6 = (n: number) => Math.round(n * 1e6) / 1e6;
  const items = job.batch.requests.map((r): ItemEstimate => {
    const usd = (n: number) => (model.currency === "USD" ? n : null);
    const none = { inputTokens: null, tier: null, inputCost: 0, cost: 0, cacheSavings: 0, inputCostUsd: usd(0), costUsd: usd(0), calls: 0, samples: 1, toolRounds: 1, cachedTokens: 0, cacheSavingsUsd: usd(0), maxOutputTokens: null, thinkingBudget: null, truncated: null };
    try {
      const plan = planBatchCall(r, model, spec);
      const input = priceFor(model, { inputTokens: plan.inputTokens, outputTokens: 0, cachedTokens: 0 });
      const ceiling = priceFor(model, { inputTokens: plan.inputTokens, outputTokens: plan.maxOutputTokens + (plan.thinkingBudget ?? 0), cachedTokens: 0 });
      return {
        id: r.customId,
        documents: [],
        inputTokens: plan.inputTokens,
        tier: input.tier,
        inputCost: round6(input.cost),
        cost: round6(ceiling.cost),
        cacheSavings: 0,
        inputCostUsd: usd(round6(input.cost)),
        costUsd: usd(round6(ceiling.cost)),
        calls: 1,
        samples: 1,
        toolRounds: 1,
        cachedTokens: 0,
        cacheSavingsUsd: usd(0),
        maxOutputTokens: plan.maxOutputTokens,
        thinkingBudget: plan.thinkingBudget ?? null,
        truncated: null,
        error: null,
      };
    } catch (e) {
      return { id: r.customId, documents: [], ...none, error: toErrorRecord(e) };
    }
  });
  return {
    job: spec.name,
    model: model.id,
    tokenCounts: { counts: model.countMargin ? "estimate" : "exact", tokenizer: model.tokenizer, safetyMargin: model.countMargin },
    items,
    totals: {
      inputTokens: items.reduce((s, i) => s + (i.inputTokens ?? 0), 0),
      inputCost: round6(items.reduce((s, i) => s + i.inputCost, 0)),
      cost: round6(items.reduce((s, i) => s + i.cost, 0)),
      cacheSavings: 0,
      inputCostUsd: model.currency === "USD" ? round6(items.reduce((s, i) => s + i.inputCost, 0)) : null,
      costUsd: model.currency === "USD" ? round6(items.reduce((s, i) => s + i.cost, 0)) : null,
      cacheSavingsUsd: model.currency === "USD" ? 0 : null,
      failing: items.filter((i) => i.error).length,
    },
    currency: model.currency,
    region: model.region,
    maxCost: null,
    maxCostUsd: null,
    quota: estimateQuota(items, pacingLimits(spec, model)),
  };
}
