import { describe, expect, it } from "vitest";
import { RateLimiter, type Clock } from "../shared/local/fixed-share-limiter.ts";

/** A clock whose sleep advances time instantly, so quota waits are exact and the test is fast. */
function fakeClock(): Clock & { t: number } {
  const c = { t: 0, now: () => c.t, sleep: async (ms: number) => void (c.t += ms) };
  return c;
}

describe("rate limiter", () => {
  it("spaces requests evenly at RPM/60 per second, with 4% headroom", async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ rpm: 120, tpm: 1e9 }, clock);
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      await limiter.acquire(10);
      starts.push(clock.t);
    }
    expect(starts.map(Math.round)).toEqual([0, 520, 1040, 1560, 2080]);
  });

  it("holds the tokens of any second under TPM/60", async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ rpm: 6000, tpm: 600_000 }, clock);
    await limiter.acquire(4000);
    await limiter.acquire(4000);
    expect(Math.round(clock.t)).toBe(10);
    await limiter.acquire(4000);
    // 12,000 tokens would exceed 10,000 in one second: wait for the first to leave the window.
    expect(clock.t).toBe(1150);
  });

  it("holds the tokens of the last minute under TPM, and runs requests above TPM/60 in a second of their own", async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ rpm: 6000, tpm: 300_000 }, clock);
    await limiter.acquire(150_000);
    await limiter.acquire(150_000);
    expect(clock.t).toBe(1150);
    await limiter.acquire(150_000);
    expect(clock.t).toBe(60_150);
  });

  it("lets one request larger than the whole quota run alone", async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ rpm: 600, tpm: 100_000 }, clock);
    await limiter.acquire(250_000);
    expect(clock.t).toBe(0);
    await limiter.acquire(1);
    expect(clock.t).toBe(60_150);
  });

  it("counts what a request really used once it is settled", async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ rpm: 6000, tpm: 300_000 }, clock);
    await limiter.acquire(200_000);
    limiter.settle(200_000, 20_000);
    clock.t += 2000;
    await limiter.acquire(200_000);
    expect(clock.t).toBe(2000);
  });

  it("refuses nonsense limits", () => {
    expect(() => new RateLimiter({ rpm: 0, tpm: 10 })).toThrow(TypeError);
  });
});
