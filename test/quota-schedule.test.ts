import { describe, expect, it } from "vitest";
import { earliestStart, fits, type QuotaEntry } from "../shared/run/quota-schedule.ts";

// 60,000 tokens a minute: 58,800 usable with the 2 % headroom, 980 a second.
const limits = { tpm: 60_000 };
const large = (at: number, tokens = 50_000): QuotaEntry => ({ id: `large-${at}`, at, tokens });

describe("quota schedule: where a request may start", () => {
  it("puts a small request before a large start planned later, when that start keeps its room", () => {
    const log = [large(10_000)];
    // Added there, the large start still fits: its minute holds 50,010 of 58,800 tokens, its second only itself.
    expect(earliestStart(log, limits, 10, 0)).toBe(0);
    expect(fits([{ id: "small", at: 0, tokens: 10 }], limits, 50_000, 10_000)).toBe(true);
  });

  it("keeps a large start's second to itself: a request that would share it goes after it", () => {
    // 9,500 is inside the second (and margin) before the large start; 11,201 is the first moment after it.
    expect(earliestStart([large(10_000)], limits, 10, 9_500)).toBe(11_201);
  });

  it("does not take minute room a later start relies on", () => {
    // The planned start's minute would hold 58,000 + 1,000 > 58,800: the request waits until that start has left the minute.
    expect(earliestStart([large(30_000, 58_000)], limits, 1_000, 0)).toBe(30_000 + 60_800 + 1);
  });

  it("fills a gap between planned starts rather than queueing behind the last", () => {
    const log = [{ id: "a", at: 0, tokens: 900 }, large(20_000)];
    // A second after the first start there is room, and the large start's minute keeps room for 100 more.
    expect(earliestStart(log, limits, 100, 0)).toBe(1_201);
  });
});
