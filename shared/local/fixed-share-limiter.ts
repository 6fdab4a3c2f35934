/**
 * The benchmark baseline's limiter (bench:fleet's fixed-share arm), local only: nothing deployed uses it.
 *
 * Keeps one process inside a requests-per-minute and tokens-per-minute quota. The API enforces
 * both per minute and per second (RPM/60, TPM/60: reference §7), so requests are spaced evenly,
 * a sliding minute window holds the token total under TPM, and a sliding second window under
 * TPM/60 (a request larger than that runs in a second of its own). Windows are kept a little
 * wider and spacing a little longer than the quota, so network jitter cannot push a request
 * into the provider's previous window.
 */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/** Headroom against jitter between this clock and the provider's: 4% on spacing, 150 ms on windows. */
const SPACING_MARGIN = 1.04;
const WINDOW_MARGIN_MS = 150;

export class RateLimiter {
  readonly rpm: number;
  readonly tpm: number;
  private readonly clock: Clock;
  private nextStartAt = 0;
  private window: { at: number; tokens: number }[] = [];
  private queue: Promise<void> = Promise.resolve();

  constructor(limits: { rpm: number; tpm: number }, clock: Clock = systemClock) {
    if (!(limits.rpm > 0) || !(limits.tpm > 0)) throw new TypeError("rpm and tpm must be positive numbers");
    this.rpm = limits.rpm;
    this.tpm = limits.tpm;
    this.clock = clock;
  }

  /** Resolves when a request of `tokens` (input + expected output) may start. FIFO. */
  acquire(tokens: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.waitForRoom(tokens, signal));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Corrects the reservation once the real usage is known. */
  settle(reserved: number, actual: number): void {
    const entry = this.window.findLast((e) => e.tokens === reserved);
    if (entry) entry.tokens = actual;
  }

  private async waitForRoom(tokens: number, signal?: AbortSignal): Promise<void> {
    const minuteMs = 60_000 + WINDOW_MARGIN_MS;
    const secondMs = 1_000 + WINDOW_MARGIN_MS;
    for (;;) {
      const now = this.clock.now();
      this.window = this.window.filter((e) => e.at > now - minuteMs);
      const spacingWait = Math.max(0, this.nextStartAt - now);
      const minuteWait = this.waitFor(now, minuteMs, tokens, this.tpm);
      const secondWait = this.waitFor(now, secondMs, tokens, this.tpm / 60);
      const wait = Math.max(spacingWait, minuteWait, secondWait);
      if (wait <= 0) {
        this.nextStartAt = now + (60_000 / this.rpm) * SPACING_MARGIN;
        this.window.push({ at: now, tokens });
        return;
      }
      await this.clock.sleep(wait, signal);
    }
  }

  /**
   * How long until `tokens` more fit in the last `spanMs` under `limit`: 0 when they fit, or when
   * the span is empty (a request larger than the limit can only ever run alone).
   */
  private waitFor(now: number, spanMs: number, tokens: number, limit: number): number {
    const inSpan = this.window.filter((e) => e.at > now - spanMs);
    if (inSpan.length === 0) return 0;
    let used = inSpan.reduce((sum, e) => sum + e.tokens, 0);
    if (used + tokens <= limit) return 0;
    // Wait until enough of the oldest entries have left the span.
    for (const e of inSpan) {
      used -= e.tokens;
      if (used + tokens <= limit || used === 0) return e.at + spanMs - now;
    }
    return 0;
  }
}
