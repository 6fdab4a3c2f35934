/**
 * Keeps one process inside a requests-per-minute and tokens-per-minute quota. Requests are
 * spaced evenly (the API also enforces RPM/60 per second, so bursts fail even under the minute
 * cap) and a sliding minute window holds the token total under TPM.
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
    for (;;) {
      const now = this.clock.now();
      this.window = this.window.filter((e) => e.at > now - 60_000);
      const used = this.window.reduce((sum, e) => sum + e.tokens, 0);
      const spacingWait = Math.max(0, this.nextStartAt - now);
      // A single request larger than the whole quota can only ever run alone.
      const tokenWait = used + tokens <= this.tpm || this.window.length === 0 ? 0 : this.window[0]!.at + 60_000 - now;
      const wait = Math.max(spacingWait, tokenWait);
      if (wait <= 0) {
        this.nextStartAt = now + 60_000 / this.rpm;
        this.window.push({ at: now, tokens });
        return;
      }
      await this.clock.sleep(wait, signal);
    }
  }
}
