import { createHmac, timingSafeEqual } from "node:crypto";

// A job's webhook: the end-of-job event's JSON body POSTed to an https URL, signed so the
// receiver can tell it came from this stack and was not replayed.

export const SIGNATURE_HEADER = "x-longdoc-signature";
export const TIMESTAMP_HEADER = "x-longdoc-timestamp";

/**
 * `sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<raw body>` (the timestamp header's value, a
 * dot, then the body bytes as sent). Signing the timestamp too means a captured request cannot
 * be replayed later with a fresh timestamp.
 */
export function signBody(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** What a receiver does: recompute and compare in constant time, and refuse stale timestamps. */
export function verifySignature(secret: string, headers: { signature?: string; timestamp?: string }, body: string, o: { nowS?: number; toleranceS?: number } = {}): boolean {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp || !/^\d+$/.test(timestamp)) return false;
  const nowS = o.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - Number(timestamp)) > (o.toleranceS ?? 300)) return false;
  const want = Buffer.from(signBody(secret, timestamp, body));
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

export interface WebhookOptions {
  secret: string;
  /** Attempts in all (the first call and its retries); bounded so a finishing worker does not hang on a dead receiver. */
  attempts?: number;
  /** Backoff before retry n: base × 2^(n-1), full jitter. */
  backoffBaseMs?: number;
  /** Per-attempt timeout. */
  timeoutMs?: number;
  /**
   * Tests and local demos only (LONGDOC_WEBHOOK_LOOPBACK_HTTP=1): an https URL whose host is
   * 127.0.0.1, ::1 or localhost is called over plain http, since a loopback receiver has no
   * certificate. The job file itself must still say https.
   */
  loopbackHttp?: boolean;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  nowS?: () => number;
  random?: () => number;
}

export interface WebhookOutcome {
  ok: boolean;
  attempts: number;
  /** The last HTTP status, or null when no response came (connection refused, timeout). */
  status: number | null;
  /** Why it failed, without the URL's query or any secret. */
  error: string | null;
}

export const WEBHOOK_DEFAULTS = { attempts: 5, backoffBaseMs: 1000, timeoutMs: 10_000 };

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** The URL to call: the job's https URL, downgraded to http only for loopback hosts when the flag allows it. */
export function webhookTarget(url: string, loopbackHttp: boolean): URL {
  const u = new URL(url);
  if (u.protocol !== "https:") throw new TypeError("webhooks are https only");
  if (loopbackHttp && LOOPBACK_HOSTS.has(u.hostname)) u.protocol = "http:";
  return u;
}

/** Retried: no response, 408, 429 and 5xx. Any other status is the receiver's answer and is final. */
const retryable = (status: number | null) => status === null || status === 408 || status === 429 || status >= 500;

/** POSTs `body` signed, retrying with backoff a bounded number of times; never throws. */
export async function deliverWebhook(url: string, body: string, o: WebhookOptions): Promise<WebhookOutcome> {
  const attempts = Math.max(1, o.attempts ?? WEBHOOK_DEFAULTS.attempts);
  const doFetch = o.fetch ?? fetch;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = o.random ?? Math.random;
  let target: URL;
  try {
    target = webhookTarget(url, o.loopbackHttp ?? false);
  } catch (e) {
    return { ok: false, attempts: 0, status: null, error: (e as Error).message };
  }
  let status: number | null = null;
  let error: string | null = null;
  for (let n = 1; n <= attempts; n++) {
    const timestamp = String((o.nowS ?? (() => Math.floor(Date.now() / 1000)))());
    try {
      const res = await doFetch(target, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "longdoc-webhook/1", [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signBody(o.secret, timestamp, body) },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(o.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs),
      });
      status = res.status;
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) return { ok: true, attempts: n, status, error: null };
      error = `the receiver answered ${status}`;
    } catch (e) {
      status = null;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      error = `no response (${(e as Error).name === "TimeoutError" ? "timed out" : (cause?.code ?? cause?.message ?? (e as Error).message)})`;
    }
    if (!retryable(status) || n === attempts) return { ok: false, attempts: n, status, error };
    await sleep(Math.round(random() * (o.backoffBaseMs ?? WEBHOOK_DEFAULTS.backoffBaseMs) * 2 ** (n - 1)));
  }
  return { ok: false, attempts, status, error };
}
