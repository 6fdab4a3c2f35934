import { describe, expect, it } from "vitest";
import { killAllWorkersCase, sigtermResumeCase } from "./faults/cases.ts";

// `longdoc run` as a user runs it (a child process), with its worker processes or itself killed mid-run.
describe("a local run whose worker processes die, or which is sent SIGTERM", () => {
  it("every worker SIGKILLed mid-run: each is replaced with a message, and every item succeeds", async () => {
    const r = await killAllWorkersCase({ items: 8, workers: 3 });
    expect(r.problems, JSON.stringify(r.details, null, 1)).toEqual([]);
    expect(r.details.killed).toBe(3);
    expect(r.paidTwice).toBe(0);
  }, 180_000);

  it("SIGTERM mid-run exits 143 with the resume hint; the resume pays for no answer twice", async () => {
    const r = await sigtermResumeCase({ items: 6, workers: 2 });
    expect(r.problems, JSON.stringify(r.details, null, 1)).toEqual([]);
    expect(r.details.answeredBeforeSigterm).toBeGreaterThanOrEqual(2);
    expect(r.paidTwice).toBe(0);
  }, 240_000);
});
