import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { webhookKey, webhookSecretProblem } from "../webhook-secret.ts";

// A job's webhook: the end-of-job event's JSON body POSTed to an https URL, signed as the
// Standard Webhooks specification says (https://www.standardwebhooks.com), so a receiver can
// check it with any of that project's libraries: it came from this stack, unchanged, and fresh.

export const ID_HEADER = "webhook-id";
export const TIMESTAMP_HEADER = "webhook-timestamp";
export const SIGNATURE_HEADER = "webhook-signature";

/**
 * `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the secret's decoded bytes.
 * The id and the timestamp are signed too: a captured call cannot be replayed later with a fresh
 * timestamp, and a receiver can drop a second delivery of the same id.
 */
export function signWebhook(secret: string, id: string, timestamp: string, body: string): string {
  const key = webhookKey(secret);
  if (!key) throw new TypeError("not a Standard Webhooks secret");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** What a receiver does: recompute, compare each listed signature in constant time, refuse stale timestamps. */
export function verifyWebhook(secret: string, headers: Record<string, string | undefined>, body: string, o: { nowS?: number; toleranceS?: number } = {}): boolean {
  const id = headers[ID_HEADER];
  const timestamp = headers[TIMESTAMP_HEADER];
  const signatures = headers[SIGNATURE_HEADER];
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp) || !webhookKey(secret)) return false;
  const nowS = o.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - Number(timestamp)) > (o.toleranceS ?? 300)) return false;
  const want = Buffer.from(signWebhook(secret, id, timestamp, body));
  return signatures.split(" ").some((s) => {
    const got = Buffer.from(s);
    return got.length === want.length && timingSafeEqual(got, want);
  });
}

/** The message id of one event: the same on every attempt, so a receiver can tell a retry from a new event. */
export const webhookId = (body: string) => `msg_${createHash("sha256").update(body).digest("hex").slice(0, 32)}`;

// ---------------------------------------------------------------------------------------------
// Where a webhook may go. A deployed worker runs inside AWS: a job file must not be able to make
// it call the instance metadata service, a VPC address or anything on the host. The check is on
// the addresses the name resolves to, at connect time (so a name cannot resolve to a public
// address for a check and a private one for the call).

const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, the instance metadata service
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(net, prefix, "ipv4");
}
for (const [net, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96], // NAT64: reaches IPv4 addresses, private ones included
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, prefix, "ipv6");
}
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** An IPv4 address written inside IPv6 (`::ffff:10.0.0.1`, `::ffff:a00:1`) as IPv4; anything else as it is. */
function unmapped(address: string): { address: string; family: "ipv4" | "ipv6" } {
  const a = address.toLowerCase();
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) return { address: dotted[1]!, family: "ipv4" };
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (hex) {
    const n = (parseInt(hex[1]!, 16) << 16) | parseInt(hex[2]!, 16);
    return { address: [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join("."), family: "ipv4" };
  }
  return { address: a, family: isIP(a) === 6 ? "ipv6" : "ipv4" };
}

/** Why the webhook may not be sent to `address`, or null when it may (a public address; loopback only when allowed). */
export function addressProblem(address: string, allowLoopback: boolean): string | null {
  const a = unmapped(address);
  if (allowLoopback && LOOPBACK.check(a.address, a.family)) return null;
  if (!BLOCKED.check(a.address, a.family)) return null;
  const kind = LOOPBACK.check(a.address, a.family) ? "a loopback" : /^(169\.254\.|fe[89ab])/.test(a.address) ? "a link-local" : "a private or reserved";
  return `resolves to ${address}, ${kind} address; webhooks go to public addresses only`;
}

/** Resolves a host name to its addresses (dns.lookup by default; tests give their own). */
export type Resolve = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolve: Resolve = (host) => dnsLookup(host, { all: true, verbatim: true });

class RefusedAddress extends Error {}

/** A net.connect lookup that resolves, refuses the whole host if any address is not allowed, and connects to the first. */
function checkedLookup(resolve: Resolve, allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    const cb = callback as unknown as (err: Error | null, address: string | { address: string; family: number }[], family?: number) => void;
    const literal = isIP(hostname.replace(/^\[|\]$/g, ""));
    const found = literal ? Promise.resolve([{ address: hostname.replace(/^\[|\]$/g, ""), family: literal }]) : resolve(hostname);
    found.then(
      (addresses) => {
        if (addresses.length === 0) return cb(new Error(`${hostname} has no address`), "", 0);
        for (const a of addresses) {
          const problem = addressProblem(a.address, allowLoopback);
          if (problem) return cb(new RefusedAddress(`${hostname} ${problem}`), "", 0);
        }
        if ((options as { all?: boolean }).all) return cb(null, addresses);
        cb(null, addresses[0]!.address, addresses[0]!.family);
      },
      (e: unknown) => cb(e as Error, "", 0),
    );
  };
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
   * certificate, and loopback addresses are allowed. The job file itself must still say https.
   */
  loopbackHttp?: boolean;
  /** Told after each attempt that will be followed by another: to record progress. */
  onAttempt?: (progress: WebhookOutcome & { nextAttemptInMs: number }) => Promise<void> | void;
  resolve?: Resolve;
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

/** One POST; resolves with the status (the response body is not read), rejects when no response came. */
function post(target: URL, headers: Record<string, string>, body: string, o: { timeoutMs: number; lookup: LookupFunction }): Promise<number> {
  return new Promise((resolve, reject) => {
    const send = target.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(target, { method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) }, lookup: o.lookup, signal: AbortSignal.timeout(o.timeoutMs) }, (res: IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      res.on("error", () => undefined);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** POSTs `body` signed, retrying with backoff a bounded number of times; never throws. Redirects are not followed. */
export async function deliverWebhook(url: string, body: string, o: WebhookOptions): Promise<WebhookOutcome> {
  const attempts = Math.max(1, o.attempts ?? WEBHOOK_DEFAULTS.attempts);
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = o.random ?? Math.random;
  let target: URL;
  try {
    target = webhookTarget(url, o.loopbackHttp ?? false);
  } catch (e) {
    return { ok: false, attempts: 0, status: null, error: (e as Error).message };
  }
  const secretProblem = webhookSecretProblem(o.secret);
  if (secretProblem) return { ok: false, attempts: 0, status: null, error: `the webhook secret ${secretProblem}` };
  const allowLoopback = (o.loopbackHttp ?? false) && LOOPBACK_HOSTS.has(target.hostname);
  // An address in the URL itself is connected to without a lookup: checked here.
  const literal = target.hostname.replace(/^\[|\]$/g, "");
  const literalProblem = isIP(literal) ? addressProblem(literal, allowLoopback) : null;
  if (literalProblem) return { ok: false, attempts: 0, status: null, error: `not sent: ${target.hostname} ${literalProblem.replace(/^resolves to \S+, /, "is ")}` };
  const lookup = checkedLookup(o.resolve ?? systemResolve, allowLoopback);
  const id = webhookId(body);
  let status: number | null = null;
  let error: string | null = null;
  for (let n = 1; n <= attempts; n++) {
    const timestamp = String((o.nowS ?? (() => Math.floor(Date.now() / 1000)))());
    try {
      status = await post(
        target,
        {
          "content-type": "application/json",
          "user-agent": "longdoc-webhook/1",
          [ID_HEADER]: id,
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: signWebhook(o.secret, id, timestamp, body),
        },
        body,
        { timeoutMs: o.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs, lookup },
      );
      if (status >= 200 && status < 300) return { ok: true, attempts: n, status, error: null };
      error = status >= 300 && status < 400 ? `the receiver answered ${status} (a redirect, which is not followed)` : `the receiver answered ${status}`;
    } catch (e) {
      if (e instanceof RefusedAddress) return { ok: false, attempts: 0, status: null, error: `not sent: ${e.message}` };
      status = null;
      const code = (e as NodeJS.ErrnoException).code;
      error = `no response (${(e as Error).name === "TimeoutError" || (e as Error).name === "AbortError" ? "timed out" : (code ?? (e as Error).message)})`;
    }
    if (!retryable(status) || n === attempts) return { ok: false, attempts: n, status, error };
    const waitMs = Math.round(random() * (o.backoffBaseMs ?? WEBHOOK_DEFAULTS.backoffBaseMs) * 2 ** (n - 1));
    await o.onAttempt?.({ ok: false, attempts: n, status, error, nextAttemptInMs: waitMs });
    await sleep(waitMs);
  }
  return { ok: false, attempts, status, error };
}
