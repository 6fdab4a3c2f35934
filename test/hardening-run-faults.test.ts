import { describe, expect, it } from "vitest";
import { rm } from "node:fs/promises";
import path from "node:path";
import { startSimulator } from "../shared/sim/index.ts";
import { alive, childPids, jobFolder, killAllWorkersCase, runCli, sigtermResumeCase, until } from "./faults/cases.ts";

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

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    it(`a second ${signal} stops at once, with the resume hint and exit ${code}, and leaves no worker behind`, async () => {
      const sim = await startSimulator({ port: 0, decodeTokensPerSecond: 100 });
      const { dir, job } = await jobFolder("twice", 4);
      const run = runCli([job, "--workers", "2", "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], sim);
      try {
        await until("a stream in flight", () => sim.calls.some((c) => c.status === 200 && c.outcome === null), 60_000, run.exited);
        const workers = childPids(run.child.pid!, "worker-process");
        expect(workers.length).toBe(2);
        run.child.kill(signal);
        await until("the first signal's message", () => run.out.stderr.includes(`${signal}: stopping the workers`), 10_000, run.exited);
        run.child.kill(signal);
        expect(await run.exited).toBe(code);
        expect(run.out.stderr).toContain(`${signal}: stopped at once`);
        expect(run.out.stderr).toMatch(/resume it with: longdoc run .* --state .*\(or: longdoc retry \S+ --state /);
        await new Promise((r) => setTimeout(r, 1500));
        expect(workers.filter(alive)).toEqual([]);
      } finally {
        if (run.child.exitCode === null) run.child.kill("SIGKILL");
        await sim.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }, 90_000);
  }
});
