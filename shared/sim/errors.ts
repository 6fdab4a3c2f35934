/**
 * The provider's error envelope (reference §6):
 * `{"error":{"message","type","param":null,"code"},"id":"chatcmpl-<uuid>","request_id":"<uuid>"}`;
 * 401 bodies carry no `id`. Where the reference lists no `type`, the simulator repeats the code.
 */

export interface ProviderError {
  status: number;
  code: string;
  type: string;
  message: string;
}

const ALGO = "<400> InternalError.Algo.InvalidParameter: ";

export const providerErrors = {
  internal: { status: 500, code: "internal_error", type: "internal_error", message: "An internal error has occured, please try again later or contact service support." },
  timeout: { status: 500, code: "RequestTimeOut", type: "RequestTimeOut", message: "Request timed out, please try again later." },
  unavailable: {
    status: 503,
    code: "ModelUnavailable",
    type: "ModelUnavailable",
    message: "Too many requests. Your requests are being throttled due to system capacity limits. Please try again later.",
  },
  limitRequests: { status: 429, code: "limit_requests", type: "limit_requests", message: "Requests rate limit exceeded, please try again later." },
  limitBurst: {
    status: 429,
    code: "limit_burst_rate",
    type: "limit_burst_rate",
    message: "Request rate increased too quickly. To ensure system stability, please adjust your client logic to scale requests more smoothly over time.",
  },
  quotaMinute: { status: 429, code: "insufficient_quota", type: "insufficient_quota", message: "You exceeded your current quota, please check your plan and billing details." },
  quotaSecond: { status: 429, code: "insufficient_quota", type: "insufficient_quota", message: "Allocated quota exceeded, please increase your quota limit." },
  badKey: { status: 401, code: "invalid_api_key", type: "invalid_request_error", message: "Incorrect API key provided." },
  accessDenied: { status: 403, code: "AccessDenied", type: "AccessDenied", message: "Access denied." },
  freeTierOnly: {
    status: 403,
    code: "AllocationQuota.FreeTierOnly",
    type: "AllocationQuota.FreeTierOnly",
    message: 'The free tier of the model has been exhausted. If you wish to continue access the model on a paid basis, please disable the "use free tier only" mode in the management console.',
  },
  arrearage: { status: 400, code: "Arrearage", type: "Arrearage", message: "Access denied, please make sure your account is in good standing." },
  // 429s that are not rate limits (docs/qwen-api.md §6): billing states that waiting never clears.
  prepaidOverdue: { status: 429, code: "PrepaidBillOverdue", type: "PrepaidBillOverdue", message: "The prepaid bill is overdue." },
  postpaidOverdue: { status: 429, code: "PostpaidBillOverdue", type: "PostpaidBillOverdue", message: "The postpaid bill is overdue." },
  notPurchased: { status: 429, code: "CommodityNotPurchased", type: "CommodityNotPurchased", message: "Commodity has not purchased yet." },
  // The error-code page gives this message without a code; public tables pair it with
  // Throttling.AllocationQuota (a code that otherwise means a TPM/TPS wait) [S]: only the words tell.
  freeQuotaExceeded: { status: 429, code: "Throttling.AllocationQuota", type: "Throttling.AllocationQuota", message: "Free allocated quota exceeded." },
  // A 429 code no table lists (the simulator's invention), for clients' handling of the unknown.
  unknown429: { status: 429, code: "AccountStateUnlisted", type: "AccountStateUnlisted", message: "Your request was refused for a reason this simulator does not name." },
  inputModeration: { status: 400, code: "data_inspection_failed", type: "data_inspection_failed", message: "Input data may contain inappropriate content." },
  outputModeration: { status: 400, code: "data_inspection_failed", type: "data_inspection_failed", message: "Output data may contain inappropriate content." },
} as const satisfies Record<string, ProviderError>;

export const modelNotFound = (model: string): ProviderError => ({
  status: 404,
  code: "model_not_found",
  type: "invalid_request_error",
  message: `The model ${model} does not exist or you do not have access to it.`,
});

export const invalidParameter = (message: string, opts: { algo?: boolean } = {}): ProviderError => ({
  status: 400,
  code: "invalid_parameter_error",
  type: "invalid_request_error",
  message: opts.algo ? ALGO + message : message,
});

/** The JSON error body. `id` is omitted for 401, as the real API does. */
export function errorBody(e: ProviderError, requestId: string): Record<string, unknown> {
  const error = { message: e.message, type: e.type, param: null, code: e.code };
  return e.status === 401 ? { error, request_id: requestId } : { error, id: `chatcmpl-${requestId}`, request_id: requestId };
}
