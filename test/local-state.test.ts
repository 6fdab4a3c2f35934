import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../shared/run/manifest.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

/**
 * One live owner per local state, as the deployed stack is one stack; a run killed outright is
 * resumed by the same command, and nothing it finished is paid for again. Real CLI processes.
 */
describe("local runs you can trust", () => {
  let sim: Simulator;
  let dir: string;
  beforeAll(async () => {
    // Slow enough that a run is still going when the test acts on it.
    sim = await startSimulator({ port: 0, decodeTokensPerSecond: 50 });
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-state-"));
  });
  afterAll(async () => {
    await sim?.stop();
  });

  const env = () => ({ ...process.env, DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL, LONGDOC_LOG: "error" });

  function start(args: string[]): { child: ChildProcess; stderr(): string; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
    const child = spawn(process.execPath, ["bin/longdoc.ts", ...args], { env: env() });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
    return { child, stderr: () => stderr, done };
  }

  async function makeJob(name: string, n: number): Promise<string> {
    const jobDir = path.join(dir, name);
    await mkdir(path.join(jobDir, "docs"), { recursive: true });
    for (let i = 0; i < n; i++) await writeFile(path.join(jobDir, "docs", `n${i}.md`), `# Note ${i}\n\nRevenue rose ${i} percent.\n`);
    const file = path.join(jobDir, "job.yaml");
    await writeFile(file, `name: ${name}\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nthinking: { enabled: false }\nmaxOutputTokens: 512\n`);
    return file;
  }

  const okCallsBySource = (since: number) => {
    const by = new Map<string, number>();
    for (const c of sim.calls.slice(since)) if (c.status === 200) for (const d of c.documents) by.set(d.source, (by.get(d.source) ?? 0) + 1);
    return by;
  };

  const waitFor = async (what: () => boolean, ms: number) => {
    const until = Date.now() + ms;
    while (!what()) {
      if (Date.now() > until) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it("a second run or a cancel on a state in use is refused, naming the owner; the first run makes one call per item", async () => {
    const job = await makeJob("owned", 10);
    const state = path.join(dir, "owned-state");
    const before = sim.calls.length;
    const first = start(["run", job, "--state", state, "--out", path.join(dir, "out"), "--workers", "2"]);
    await waitFor(() => sim.calls.length > before, 30_000);
    const [second, cancel] = await Promise.all([
      start(["run", job, "--state", state, "--out", path.join(dir, "out")]).done,
      start(["cancel", "owned-20200101-000000-abcd", "--state", state]).done,
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`the local state '${state}' is in use by 'longdoc run .*job.yaml' \\(pid ${first.child.pid}`));
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toContain("is in use by");
    const out = await first.done;
    expect(out.code, out.stderr).toBe(0);
    const calls = okCallsBySource(before);
    expect([...calls.values()]).toEqual(Array(10).fill(1));
  }, 120_000);

  it("a run killed with SIGKILL, then the same command: the job resumes and no finished item is called again", async () => {
    const job = await makeJob("killed-run", 8);
    const state = path.join(dir, "killed-state");
    const out = path.join(dir, "out");
    const before = sim.calls.length;
    const first = start(["run", job, "--state", state, "--out", out, "--workers", "2"]);
    // Kill it once some items are answered and others are not.
    await waitFor(() => [...okCallsBySource(before).values()].length >= 3, 60_000);
    const jobId = /job (killed-run-\d{8}-\d{6}-[0-9a-f]{4})/.exec(first.stderr())?.[1];
    expect(jobId).toBeDefined();
    first.child.kill("SIGKILL");
    await first.done;
    const answeredBefore = okCallsBySource(before);

    // status says interrupted, not running, and how to resume.
    const status = await start(["status", jobId!, "--state", state]).done;
    expect(status.stdout).toContain(`job ${jobId} (killed-run, model qwen3-max): interrupted`);
    expect(status.stdout).toContain(`longdoc retry ${jobId}`);
    const again = await start(["run", job, "--state", state, "--out", out, "--workers", "2", "--json"]).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/resuming job killed-run-\d{8}-\d{6}-[0-9a-f]{4}, which an earlier run/);
    const summary = JSON.parse(again.stdout.trim()) as Manifest;
    expect(summary.jobId).toBe(jobId);
    expect(summary.counts).toMatchObject({ total: 8, succeeded: 8 });
    const calls = okCallsBySource(before);
    expect(calls.size).toBe(8);
    // At most the two items in flight when the run died are called twice; the others once.
    expect([...calls.values()].filter((n) => n > 1).length).toBeLessThanOrEqual(2);
    expect([...calls.values()].every((n) => n <= 2)).toBe(true);
    expect(answeredBefore.size).toBeGreaterThanOrEqual(3);
    const manifest = JSON.parse(await readFile(path.join(out, summary.jobId, "manifest.json"), "utf8")) as Manifest;
    expect(manifest.items.every((i) => i.status === "succeeded")).toBe(true);
  }, 150_000);
});
