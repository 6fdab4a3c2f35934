import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { startFleet, type WorkerReplaced } from "../shared/local/fleet.ts";
import { residentMb } from "../shared/local/memory-cap.ts";
import { silentLog } from "../shared/log.ts";
import { loadSettings } from "../shared/settings.ts";
import { alive } from "./faults/cases.ts";
import { useLoopback } from "./helpers/loopback.ts";


describe("a worker process's limits, as a Lambda container's", () => {
  const loop = useLoopback();

  it("dies with its parent even while its main thread is busy (kill -9 of the parent)", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-parent-watch-"));
    try {
      // A child that watches its parent, then spins for a minute (as a worker stuck in a huge document).
      await writeFile(
        path.join(dir, "child.ts"),
        `import { dieWithParent } from ${JSON.stringify(path.resolve("shared/local/parent-watch.ts"))};\ndieWithParent(process.ppid, 200);\nprocess.send?.("ready");\nfor (const end = Date.now() + 60_000; Date.now() < end; ) {}\n`,
      );
      await writeFile(path.join(dir, "parent.ts"), `import { fork } from "node:child_process";\nconst c = fork(${JSON.stringify(path.join(dir, "child.ts"))});\nc.on("message", () => console.log(c.pid));\nsetInterval(() => {}, 1000);\n`);
      const parent = spawn(process.execPath, [path.join(dir, "parent.ts")], { stdio: ["ignore", "pipe", "inherit"] });
      const childPid = await new Promise<number>((resolve) => parent.stdout.once("data", (d) => resolve(Number(String(d).trim()))));
      expect(alive(childPid)).toBe(true);
      parent.kill("SIGKILL");
      await expect.poll(() => alive(childPid), { timeout: 5_000, interval: 100 }).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("over its memory cap it is stopped and reported; workers that cannot start under the cap end the fleet with an error, not a wait", async () => {
    const settings = loadSettings({ ...loop.env(), LONGDOC_LOG: "error" });
    const big = await startFleet({ stack: loop.stack, workers: 1, settings, endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL }, log: silentLog });
    const rss = await residentMb(big.processes[0]!.pid!);
    await big.stop();
    expect(rss).toBeGreaterThan(40);
    // A cap below what an idle worker holds: each process goes over it once it has started. Without
    // the compile cache the tests keep, a worker is over its cap before it first polls, as a
    // container that cannot start is.
    const cache = process.env.NODE_COMPILE_CACHE;
    delete process.env.NODE_COMPILE_CACHE;
    const replaced: WorkerReplaced[] = [];
    const fleet = await startFleet({
      stack: loop.stack,
      workers: 1,
      settings,
      endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL },
      log: silentLog,
      memoryMb: Math.floor(rss! * 0.8),
      onReplaced: (r) => replaced.push(r),
    }).catch((e: unknown) => e as Error);
    if (cache !== undefined) process.env.NODE_COMPILE_CACHE = cache;
    if (fleet instanceof Error) throw fleet;
    try {
      await expect.poll(() => replaced.length, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(1);
      expect(replaced[0]).toMatchObject({ index: 0, overMemory: true, signal: "SIGKILL" });
      expect(replaced[0]!.newPid).toEqual(expect.any(Number));
      await expect.poll(() => fleet.failure()?.message, { timeout: 60_000, interval: 200 }).toMatch(/died 3 times in a row before it could poll/);
      expect(replaced.at(-1)!.newPid).toBeNull();
    } finally {
      await fleet.stop();
    }
  }, 120_000);
});
