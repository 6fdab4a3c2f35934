import { APIConnectionError, APIError, APIUserAbortError } from "openai";
import { LongdocError, ModelError } from "../errors.ts";
import { lineOf, successorsOf, type Catalog } from "./catalog.ts";

/** What classification reads of the catalog: every model (retired ones too) and those priced here. */
export type ModelCatalogView = Pick<Catalog, "all" | "models" | "regionName">;

/**
 * Maps what the Model Studio API returns (see docs/qwen-api.md §6) onto longdoc's error
 * family: transient faults are retryable, faults of the whole account halt the job.
 */
export function classifyModelError(e: unknown, ctx: { model?: string; catalog?: ModelCatalogView } = {}): LongdocError {
  if (LongdocError.is(e)) return e;
  if (e instanceof APIUserAbortError || isAbort(e)) return new ModelError("deadline", "the model call was aborted before it finished", { retryable: true, cause: e });
  // The SDK throws a SyntaxError for a chunk that is not JSON: a garbled stream, worth another try.
  if (e instanceof SyntaxError && /malformed/i.test(e.message)) {
    return new ModelError("model_error", `the stream sent a malformed chunk (${e.message})`, { retryable: true, cause: e });
  }
  if (e instanceof APIConnectionError) {
    return new ModelError("model_unavailable", `cannot reach the model endpoint: ${e.message}`, { retryable: true, cause: e });
  }
  if (e instanceof APIError) {
    const code = providerCode(e);
    const msg = `${e.status ?? "stream"} ${code ?? ""}: ${providerMessage(e)}`.replace(/\s+:/, ":");
    const opts = { cause: e, status: e.status, providerCode: code, requestId: e.requestID ?? undefined, headers: keptHeaders(e.headers) };
    switch (e.status) {
      case 400:
        if (code === "data_inspection_failed") return new ModelError("moderation", `the provider's moderation refused the content (${msg})`, opts);
        if (code === "Arrearage") return new ModelError("model_billing", `the account is not in good standing; check billing (${msg})`, { ...opts, haltsJob: true });
        if (/input length/i.test(providerMessage(e))) return new ModelError("input_too_long", msg, opts);
        // A parameter every call of the job sends the same way: every item would be refused alike.
        if (JOB_WIDE_400.test(providerMessage(e))) {
          return new ModelError("model_bad_request", `the provider refused a setting every call of this job sends; the job is halted (${msg})`, { ...opts, haltsJob: true });
        }
        return new ModelError("model_bad_request", msg, opts);
      case 403:
        if (code === "AllocationQuota.FreeTierOnly") {
          return new ModelError(
            "model_billing",
            `the model's free quota is used up and the account allows free-tier calls only; turn off "use free tier only" in the Model Studio console to pay for calls (${msg})`,
            { ...opts, haltsJob: true },
          );
        }
        return new ModelError("model_auth", `the API key was refused; check DASHSCOPE_API_KEY and that its region matches QWEN_BASE_URL (${msg})`, { ...opts, haltsJob: true });
      case 401:
        return new ModelError("model_auth", `the API key was refused; check DASHSCOPE_API_KEY and that its region matches QWEN_BASE_URL (${msg})`, { ...opts, haltsJob: true });
      case 404:
        return new ModelError("model_not_found", modelGone(ctx, msg), { ...opts, haltsJob: true });
      case 429:
        return classify429(code, providerMessage(e), msg, opts);
      case 408:
      case 409:
        return new ModelError("rate_limited", msg, { ...opts, retryable: true });
      case undefined:
        // A status-less APIError is an error event inside the stream.
        if (code === "data_inspection_failed") return new ModelError("moderation", `the provider's moderation stopped the output (${msg})`, opts);
        return new ModelError("model_error", `the stream failed: ${msg}`, { ...opts, retryable: true });
      default:
        if (e.status >= 500) return new ModelError("model_unavailable", msg, { ...opts, retryable: true });
        return new ModelError("model_bad_request", msg, opts);
    }
  }
  const message = e instanceof Error ? e.message : String(e);
  // fetch's network failures surface as TypeError("terminated") when a socket drops mid-stream.
  if (e instanceof TypeError && /terminated|fetch failed|socket|ECONNRESET/i.test(message + String((e as Error).cause ?? ""))) {
    return new ModelError("model_unavailable", `the connection dropped: ${message}`, { retryable: true, cause: e });
  }
  return new LongdocError("internal", message, { cause: e });
}

/**
 * A 404 for the model: Model Studio retires models (three months' notice for mainline ones, 30
 * days for snapshots, docs/qwen-api.md §2), so the message names the catalog's current models of
 * the same line, for the job's `model` field.
 */
function modelGone(ctx: { model?: string; catalog?: ModelCatalogView }, msg: string): string {
  const id = ctx.model ?? "the job's model";
  const head = `the endpoint does not serve ${id} (retired, not enabled for this account, or misspelt); the job is halted`;
  if (!ctx.catalog || !ctx.model) return `${head} (${msg})`;
  const next = successorsOf(ctx.catalog, ctx.model);
  const line = lineOf(ctx.catalog, ctx.model);
  const advice = next.length
    ? `set the job's model to one of the catalog's current ${line ? `${line[0]!.toUpperCase()}${line.slice(1)}` : ""} models priced in ${ctx.catalog.regionName}: ${next.join(", ")} ('longdoc models' compares them)`
    : `choose another model ('longdoc models' lists the catalog's)`;
  return `${head}; ${advice} (${msg})`;
}

type ModelErrorOptions = ConstructorParameters<typeof ModelError>[2];

/**
 * A 429 is not always a rate limit (docs/qwen-api.md §6): billing states arrive as 429 too and
 * never clear by waiting. Billing halts the job at once with the provider's words; the rate codes
 * wait in the queue; a code neither list knows is retried like any transient fault, a bounded
 * number of times (the job's maxAttempts), then fails the item.
 */
function classify429(code: string | undefined, providerText: string, msg: string, opts: ModelErrorOptions): ModelError {
  const billing = (code && Object.hasOwn(BILLING_429, code) ? BILLING_429[code] : undefined) ?? (FREE_QUOTA_GONE.test(providerText) ? FREE_QUOTA_ADVICE : undefined);
  if (billing) return new ModelError("model_billing", `${billing}; waiting will not clear it, so the job is halted (${msg})`, { ...opts, haltsJob: true });
  if (!code || RATE_429.test(code)) return new ModelError("rate_limited", msg, { ...opts, retryable: true });
  return new ModelError(
    "model_error",
    `the provider refused with HTTP 429 and code ${code}, which is not one of its rate limits; longdoc retries it as a transient fault up to the job's maxAttempts rather than waiting as for a rate limit, then fails the item. If it persists, check the account in the Model Studio console (${msg})`,
    { ...opts, retryable: true },
  );
}

/** 429 codes of the account's billing state, with what the user should do. */
const BILLING_429: Record<string, string> = {
  PrepaidBillOverdue: "the workspace's prepaid bill is overdue; pay it in the Alibaba Cloud console",
  PostpaidBillOverdue: "the account's postpaid bill is overdue (or the model's inference plan has lapsed); settle it in the Alibaba Cloud console",
  CommodityNotPurchased: "the workspace has not purchased (subscribed to) Model Studio's model service; subscribe in the console",
  BudgetLimitExceeded: "a spending limit set on the account was reached; raise it in the console",
};
/** Matched on the words, whatever the code: public tables pair it with Throttling.AllocationQuota, a wait code. */
const FREE_QUOTA_GONE = /free allocated quota exceeded/i;
const FREE_QUOTA_ADVICE = "the model's free quota is used up and the model has no pay-as-you-go; choose another model or buy a plan for it";
/** The 429 codes that are waits: RPM/RPS, surges, TPM/TPS (`insufficient_quota` despite its name), `Throttling*`. */
const RATE_429 = /^(limit_requests|limit_burst_rate|insufficient_quota|LimitRequests|Throttling)/;

/** 400 messages about a request setting (docs/qwen-api.md §3, §9) rather than about one item's content. */
const JOB_WIDE_400 = /Range of max_tokens|Range of max_completion_tokens|thinking_budget parameter|Temperature should be|Range of top_p|Json mode response is not supported|must contain the word 'json'|enable_thinking must be set to false/i;

function isAbort(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

/** Response headers worth keeping with an error: rate limits, retry hints, the request id. */
function keptHeaders(h: unknown): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const entries: Iterable<[string, string]> | undefined =
    h instanceof Headers ? h.entries() : h && typeof h === "object" ? (Object.entries(h) as [string, string][]) : undefined;
  for (const [k, v] of entries ?? []) if (/^(x-request-id|retry-after|x-ratelimit-|x-dashscope-)/i.test(k)) out[k.toLowerCase()] = String(v);
  return Object.keys(out).length ? out : undefined;
}

function providerCode(e: APIError): string | undefined {
  if (e.code) return e.code;
  const body = e.error as { code?: unknown; error?: { code?: unknown } } | undefined;
  const code = body?.code ?? body?.error?.code;
  if (typeof code === "string") return code;
  // Moderation of a streamed request answers HTTP 400 with an SSE body, which the SDK does not
  // parse: the code is only in the message, as `400 data: {"error":{"code":...}}`.
  return /"code"\s*:\s*"([^"]+)"/.exec(e.message)?.[1];
}

function providerMessage(e: APIError): string {
  const body = e.error as { message?: unknown } | undefined;
  return typeof body?.message === "string" ? body.message : e.message;
}
