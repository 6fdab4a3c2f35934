import type { JobSpec } from "./schema.ts";

/** What job.json records of a run's overrides: each with the job file's value it replaced. */
export interface RecordedOverrides {
  model?: { job: string; run: string };
  maxCost?: { job: number | null; run: number };
  limit?: number;
  only?: string[];
}

/** A document of an item: where it came from (as the user wrote it) and where it lies in S3. */
export interface ItemDocument {
  source: string;
  uri: string;
  /** The object's size from the listing or upload: what `packing: packed` packs by, without reading it. */
  bytes?: number;
  /** The text encoding the job file states for this document (its source's `encoding`). */
  encoding?: string;
}

export interface JobItem {
  id: string;
  documents: ItemDocument[];
  /** OpenAI Batch input items: the S3 URI of the line's request (runs/<jobId>/requests/<itemId>.json), sent as written instead of documents. */
  request?: string;
}

/** runs/<jobId>/job.json: the resolved job, written once by submit and read by every worker. */
export interface JobRecord {
  version: 1;
  jobId: string;
  name: string;
  model: string;
  submittedAt: string;
  spec: JobSpec;
  /** The JSON Schema answers must match, inlined from `output.schema` or `output.schemaFile`. */
  outputSchema: Record<string, unknown> | null;
  /** `maxCost` is the cost cap in `currency`; `maxCostUsd` the same cap when that is USD (null otherwise). */
  limits: { concurrency: number; rpm: number; tpm: number; maxCostUsd: number | null; maxCost: number | null; maxDocumentBytes: number };
  /** The currency every cost of the run is in, and the pricing region it comes from. */
  currency: string;
  region: string;
  /** Deliveries before the DLQ (the queue's redrive policy). */
  maxReceives: number;
  /** Real model attempts before the worker records the item failed (returns to wait are not attempts). */
  maxAttempts: number;
  items: JobItem[];
  /** Set when the job came from an OpenAI Batch input file: its name and number of request lines. */
  batch?: { file: string; requests: number };
  /** What the command line changed of the job file for this run (`--model`, `--max-cost`, `--limit`, `--only`). */
  overrides?: RecordedOverrides;
}

export function s3Uri(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  // `s`: a key may hold any character, a newline included.
  const m = /^s3:\/\/([^/]+)\/(.*)$/s.exec(uri);
  if (!m) throw new TypeError(`not an s3:// URI: ${uri}`);
  return { bucket: m[1]!, key: m[2]! };
}
