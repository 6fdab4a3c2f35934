/**
 * The record of one attempt at an item, as S3 keeps it: `items/<itemId>/attempts/<n>.json`, or
 * `<n>.open.json` while the attempt runs. The worker writes it (attempt.ts); status, results and
 * the batch poller read it.
 */
import type { ErrorCode } from "../errors.ts";
import type { Usage } from "../model/usage.ts";

export type AttemptStatus = "running" | "succeeded" | "failed" | "interrupted" | "died";

export interface CallRecord {
  /** The question of a per-question call, "repair" for a JSON repair call, null for the item's single call. */
  label: string | null;
  requestId: string | null;
  finishReason: string | null;
  usage: Usage;
  /** True when the stream ended before its usage chunk: tokens were counted from the text received, input as uncached. */
  usageEstimated: boolean;
  /** In the catalog's currency (see the record's `currency`). */
  cost: number;
  /** The caps this call was sent with. */
  maxOutputTokens: number;
  thinkingBudget: number | null;
  maxCompletionTokens: number | null;
  /** True when the time left before the worker's deadline, not the job, set the caps. */
  limitedByDeadline: boolean;
  inputTokens: number;
  startedAt: string;
  /** Request to first chunk, and first chunk to the end (null when no chunk came). */
  firstChunkMs: number | null;
  durationMs: number | null;
  error: { kind: ErrorCode; message: string } | null;
}

/** items/<itemId>/attempts/<n>.json (and `.open.json` while it runs). */
export interface AttemptRecord {
  version: 1;
  attempt: number;
  status: AttemptStatus;
  owner: string;
  startedAt: string;
  finishedAt: string | null;
  calls: CallRecord[];
  usage: Usage;
  usageEstimated: boolean;
  cost: number;
  currency: string;
  /** The last call's finish reason and request id. */
  finishReason: string | null;
  requestId: string | null;
  error: { kind: ErrorCode; message: string; requestId?: string; status?: number; providerCode?: string } | null;
  /** Run-relative paths of the partial files this attempt left (null when it streamed none), or of the item's final files once it succeeded. */
  reasoning: string | null;
  answer: string | null;
  /** Every call in flight (samples after the first stream together, each with its own label): the worst-case cost each reserved in the job's ledger, and its input, so whoever closes an abandoned attempt can settle it. */
  inFlightCalls: InFlightCall[];
}

export interface InFlightCall {
  label: string | null;
  reservedCost: number;
  inputTokens: number;
}
