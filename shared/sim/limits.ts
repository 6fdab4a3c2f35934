/**
 * Rate limits as the reference §7 describes them: per model, RPM and TPM over sliding
 * one-minute windows, and the same quotas per second (RPS = RPM/60, TPS = TPM/60) over
 * sliding one-second windows.
 *
 * Decisions (the real algorithm is not documented [A]):
 * - Checks, in order: RPM → 429 limit_requests; RPS → 429 limit_burst_rate; TPM → 429
 *   insufficient_quota ("You exceeded your current quota…"); TPS → 429 insufficient_quota
 *   ("Allocated quota exceeded…").
 * - A request is admitted when the requests already in the window plus this one fit:
 *   `count + 1 <= rpm` and `count + 1 <= max(1, rpm/60)`.
 * - Tokens are prompt tokens counted at admission plus completion tokens added when the
 *   response ends (both dated at admission). A request is refused when
 *   `used + promptTokens > tpm`; for the per-second window only when the window already holds
 *   tokens (a single request larger than TPS is not refused by the second window alone).
 * - Refused requests are not counted.
 */
import { providerErrors, type ProviderError } from "./errors.ts";

export interface RateLimitOptions {
  rpm?: number;
  tpm?: number;
  /** Enforce the per-second windows too (default true). */
  perSecond?: boolean;
  /** Surge refusal (429 limit_burst_rate): the last second's requests over `factor` × the previous minute's per-second average, and over `minPerSecond` (default 2). */
  surge?: { factor: number; minPerSecond?: number };
}

interface Entry {
  at: number;
  tokens: number;
}

export interface Admission {
  /** Adds the completion tokens of the admitted request to its window entry. */
  settle(completionTokens: number): void;
}

export class RateWindows {
  private readonly entries: Entry[] = [];
  private readonly opts: RateLimitOptions;

  constructor(opts: RateLimitOptions) {
    this.opts = opts;
  }

  private prune(now: number): void {
    while (this.entries.length && this.entries[0]!.at <= now - 60_000) this.entries.shift();
  }

  private window(now: number, ms: number): { count: number; tokens: number } {
    let count = 0;
    let tokens = 0;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.at <= now - ms) break;
      count++;
      tokens += e.tokens;
    }
    return { count, tokens };
  }

  /** Returns the 429 to send, or admits the request and returns a handle to settle its output. */
  admit(now: number, promptTokens: number): ProviderError | Admission {
    this.prune(now);
    const { rpm, tpm } = this.opts;
    const perSecond = this.opts.perSecond ?? true;
    const minute = this.window(now, 60_000);
    const second = this.window(now, 1_000);
    if (rpm !== undefined && rpm > 0) {
      if (minute.count + 1 > rpm) return providerErrors.limitRequests;
      if (perSecond && second.count + 1 > Math.max(1, rpm / 60)) return providerErrors.limitBurst;
    }
    if (this.opts.surge) {
      const { factor, minPerSecond = 2 } = this.opts.surge;
      // the minute before this second (the minute window holds 60 s; the last one is `second`)
      const before = (minute.count - second.count) / 59;
      const rate = second.count + 1;
      if (rate > minPerSecond && rate > factor * before) return providerErrors.limitBurst;
    }
    if (tpm !== undefined && tpm > 0) {
      if (minute.tokens + promptTokens > tpm) return providerErrors.quotaMinute;
      if (perSecond && second.tokens > 0 && second.tokens + promptTokens > tpm / 60) return providerErrors.quotaSecond;
    }
    const entry: Entry = { at: now, tokens: promptTokens };
    this.entries.push(entry);
    return {
      settle(completionTokens: number) {
        entry.tokens += completionTokens;
      },
    };
  }
}

export const isProviderError = (x: ProviderError | Admission): x is ProviderError => "status" in x;
