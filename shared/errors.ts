/**
 * longdoc's errors. `code` is stable and becomes the manifest's `error.kind`; `retryable` tells
 * the worker whether SQS should deliver the task again. Three families, decided where they are
 * thrown: the item's own fault (`ItemError`: fails the item), the model's (`ModelError`: retried
 * as attempts, job-wide ones halt), and the infrastructure's (`InfraError`: S3, DynamoDB, SNS
 * past the SDK's retries: the task goes back to the queue, no attempt used, no item failed).
 */
export type ErrorCode =
  | "job_invalid"
  | "document_missing"
  | "document_unreadable"
  | "document_encrypted"
  | "document_corrupt"
  | "document_no_text"
  | "document_too_large"
  | "document_unsupported"
  | "document_empty"
  | "document_encoding"
  | "input_too_long"
  | "cost_cap"
  | "rate_limited"
  | "model_unavailable"
  | "model_error"
  | "model_bad_request"
  | "model_auth"
  | "model_billing"
  | "model_not_found"
  | "moderation"
  | "output_invalid"
  | "output_truncated"
  | "low_agreement"
  | "ungrounded"
  | "deadline"
  | "worker_crashed"
  | "halted"
  | "cancelled"
  | "submit_failed"
  | "usage"
  | "internal";

const MARK = Symbol.for("longdoc.error");

export class LongdocError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** A fault of the whole job (bad key, billing, unknown model): stop the job, not just the item. */
  readonly haltsJob: boolean;
  readonly [MARK] = true;

  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; haltsJob?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.haltsJob = opts.haltsJob ?? false;
  }

  /** Works across duplicate installs of the module, unlike instanceof. */
  static is(e: unknown): e is LongdocError {
    return typeof e === "object" && e !== null && (e as Record<symbol, unknown>)[MARK] === true;
  }
}

/** The item's own fault (its documents, its prompt, its answer): fails the item, never the job unless `haltsJob`. */
export class ItemError extends LongdocError {}

/** A document that cannot be turned into text; fails its item, never the job. */
export class DocumentError extends ItemError {}

const INFRA = Symbol.for("longdoc.infra");

/**
 * S3, DynamoDB or SNS failed past the SDK's own retries. Not the item's fault and not the
 * model's: the task goes back to the queue with no attempt used.
 */
export class InfraError extends LongdocError {
  readonly [INFRA] = true;
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("internal", message, { retryable: true, cause: opts.cause });
  }
}

/** An InfraError, or any error longdoc did not raise itself (an SDK or network fault). */
export function isInfraFault(e: unknown): boolean {
  return !LongdocError.is(e) || (e as unknown as Record<symbol, unknown>)[INFRA] === true;
}

/** The model API refused or failed; `status` is the HTTP status when there was one. */
export class ModelError extends LongdocError {
  status: number | undefined;
  providerCode: string | undefined;
  /** The provider's request id (x-request-id), for a support ticket. */
  requestId: string | undefined;
  /** The response headers that explain a refusal (rate-limit and retry headers); never the request's. */
  headers: Record<string, string> | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryable?: boolean; haltsJob?: boolean; cause?: unknown; status?: number; providerCode?: string; requestId?: string; headers?: Record<string, string> } = {},
  ) {
    super(code, message, opts);
    this.status = opts.status;
    this.providerCode = opts.providerCode;
    this.requestId = opts.requestId;
    this.headers = opts.headers;
  }
}

/** The item's prompt cannot fit the model's context; carries the numbers. */
export class BudgetError extends ItemError {
  readonly tokens: number;
  readonly limit: number;
  readonly model: string;
  constructor(message: string, numbers: { tokens: number; limit: number; model: string }) {
    super("input_too_long", message);
    this.tokens = numbers.tokens;
    this.limit = numbers.limit;
    this.model = numbers.model;
  }
}

/** A plain `{kind, message}` for result.json and the manifest. */
export function toErrorRecord(e: unknown): { kind: ErrorCode; message: string } {
  if (LongdocError.is(e)) return { kind: e.code, message: e.message };
  return { kind: "internal", message: e instanceof Error ? e.message : String(e) };
}
