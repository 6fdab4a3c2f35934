/**
 * Fault cases that drive `longdoc run` itself (a child process, as a user runs it) rather than a
 * fleet started by the suite: every worker process killed mid-run, and SIGTERM mid-run then a
 * resume. Each returns what it saw; `problems` lists what did not hold (empty when all did).
 * The fault suite (run.ts) runs them after the main suite; the vitest files run them too.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startSimulator, type Simulator } from "../../shared/sim/index.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface CaseResult {
  name: string;
  items: number;
  elapsedS: number;
  /** Items whose model answer was streamed in full more than once. */
  paidTwice: number;
  problems: string[];
  details: Record<string, unknown>;
}

/** The pids of `parent`'s children whose command line mentions `marker` (Linux /proc). */
export function childPids(parent: number, marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may hold spaces, so split after its ')'.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent && readFileSync(`/proc/${name}/cmdline`, "utf8").includes(marker)) out.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** Whether `pid` is still running: a zombie (dead, not yet reaped by its new parent) is not. */
export const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

interface Running {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<number | null>;
}

/** `longdoc run <args>` in a child process against `sim` (as an endpoint with a key, so its calls are counted). */
export function runCli(args: string[], sim: Simulator): Running {
  const child = spawn(process.execPath, [path.join(ROOT, "bin/longdoc.ts"), "run", ...args], {
    cwd: ROOT,
    env: { ...process.env, DASHSCOPE_API_KEY: "sk-fault-case", QWEN_BASE_URL: sim.baseURL, LONGDOC_LOG: "warn", LONGDOC_WEBHOOK_SECRET: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = { stdout: "", stderr: "" };
  child.stdout!.on("data", (d) => (out.stdout += d));
  child.stderr!.on("data", (d) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { child, out, exited };
}

/** A job folder with `items` small Markdown documents, one item each. */
export async function jobFolder(name: string, items: number): Promise<{ dir: string; job: string; sources: string[] }> {
  const dir = await mkdtemp(path.join(tmpdir(), `longdoc-case-${name}-`));
  await mkdir(path.join(dir, "docs"));
  const sources: string[] = [];
  for (let i = 0; i < items; i++) {
    const source = `d${String(i).padStart(2, "0")}.md`;
    sources.push(source);
    const lines = Array.from({ length: 30 }, (_, j) => `Line ${j}: revenue in segment ${i} grew ${(i * 7 + j) % 23} percent in the quarter.`);
    await writeFile(path.join(dir, "docs", source), `# Report ${i}\n\n${lines.join("\n")}\n`);
  }
  const job = path.join(dir, "job.yaml");
  await writeFile(job, `name: ${name}\ndocuments:\n  - path: docs/*.md\nprompt: Summarise the figures.\nthinking: { enabled: false }\nmaxOutputTokens: 512\n`);
  return { dir, job, sources };
}

/** Full answers the simulator streamed per document (an answer streamed in full is paid for). */
function fullAnswersBySource(sim: Simulator): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of sim.calls) if (c.outcome === "ok") for (const d of c.documents) counts.set(d.source, (counts.get(d.source) ?? 0) + 1);
  return counts;
}

export async function until(what: string, test: () => boolean, timeoutMs: number, exited?: Promise<unknown>): Promise<void> {
  let ended = false;
  void exited?.then(() => (ended = true));
  const t0 = Date.now();
  while (!test()) {
    if (ended) throw new Error(`the run exited while waiting for ${what}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lastJson = (stdout: string) => {
  try {
    return JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as { status: string; counts: { total: number; succeeded: number } };
  } catch {
    return undefined;
  }
};

/**
 * Every worker process of a run SIGKILLed while items are in flight: the fleet starts new ones
 * in their place and says so, and the run ends with every item succeeded instead of waiting forever.
 */
export async function killAllWorkersCase(o: { items?: number; workers?: number; timeoutMs?: number } = {}): Promise<CaseResult> {
  const items = o.items ?? 10;
  const workers = o.workers ?? 3;
  const t0 = Date.now();
  // Slow decoding, so streams are in flight when the kill lands.
  const sim = await startSimulator({ port: 0, decodeTokensPerSecond: 150 });
  const { dir, job, sources } = await jobFolder("kill-all", items);
  const problems: string[] = [];
  const run = runCli([job, "--workers", String(workers), "--state", path.join(dir, "state"), "--out", path.join(dir, "out"), "--json"], sim);
  try {
    await until("the first answers", () => sim.calls.filter((c) => c.outcome === "ok").length >= 1 && sim.calls.some((c) => c.outcome === null), 60_000, run.exited);
    const victims = childPids(run.child.pid!, "worker-process");
    if (victims.length !== workers) problems.push(`expected ${workers} worker processes, found ${victims.length}`);
    for (const pid of victims) process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    const code = await Promise.race([run.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), o.timeoutMs ?? 120_000))]);
    if (code === "timeout") {
      problems.push("the run did not end after every worker was killed");
      run.child.kill("SIGKILL");
    } else if (code !== 0) problems.push(`the run exited ${code}`);
    const replaced = run.out.stderr.split("\n").filter((l) => /^worker process \d+ \(pid \d+\) was killed \(SIGKILL\); started pid \d+ in its place/.test(l));
    if (replaced.length !== victims.length) problems.push(`${replaced.length} replacement message(s) for ${victims.length} killed worker(s)`);
    const summary = lastJson(run.out.stdout);
    if (summary?.counts.succeeded !== items) problems.push(`succeeded: ${summary?.counts.succeeded ?? "no summary"} of ${items}`);
    const answers = fullAnswersBySource(sim);
    const paidTwice = sources.filter((s) => (answers.get(s) ?? 0) > 1).length;
    return {
      name: "every worker process SIGKILLed mid-run",
      items,
      elapsedS: (Date.now() - t0) / 1000,
      paidTwice,
      problems,
      details: { killed: victims.length, replacementMessages: replaced.length, secondsFromKillToEnd: Math.round((Date.now() - killedAt) / 100) / 10, stderr: problems.length ? run.out.stderr.slice(-3000) : undefined },
    };
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
    await sim.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * SIGTERM (what `timeout`, `docker stop` and CI send) mid-run: exit 143 with the resume hint,
 * the answers already streamed kept, and a second run of the same job file resumes the job
 * without streaming any item's answer a second time.
 */
export async function sigtermResumeCase(o: { items?: number; workers?: number; timeoutMs?: number } = {}): Promise<CaseResult> {
  const items = o.items ?? 8;
  const workers = o.workers ?? 2;
  const t0 = Date.now();
  const sim = await startSimulator({ port: 0, decodeTokensPerSecond: 150 });
  const { dir, job, sources } = await jobFolder("sigterm", items);
  const args = [job, "--workers", String(workers), "--state", path.join(dir, "state"), "--out", path.join(dir, "out"), "--json"];
  const problems: string[] = [];
  let second: Running | undefined;
  const first = runCli(args, sim);
  try {
    // Mid-run: some answers in full, others streaming.
    await until("two answers and one in flight", () => sim.calls.filter((c) => c.outcome === "ok").length >= 2 && sim.calls.some((c) => c.outcome === null && c.status === 200), 90_000, first.exited);
    const workerPids = childPids(first.child.pid!, "worker-process");
    first.child.kill("SIGTERM");
    const firstCode = await Promise.race([first.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 60_000))]);
    if (firstCode !== 143) problems.push(`the interrupted run exited ${firstCode}, not 143`);
    if (!/resume it with: longdoc run .* --state /.test(first.out.stderr)) problems.push("no resume hint after SIGTERM");
    await new Promise((r) => setTimeout(r, 1500));
    const orphans = workerPids.filter(alive);
    if (orphans.length) problems.push(`${orphans.length} worker process(es) outlived the run`);
    const answeredBefore = [...fullAnswersBySource(sim).keys()].length;

    second = runCli(args, sim);
    const code = await Promise.race([second.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), o.timeoutMs ?? 120_000))]);
    if (code !== 0) problems.push(`the resumed run exited ${code}`);
    if (!second.out.stderr.includes("resuming job")) problems.push("the second run did not resume the job");
    const summary = lastJson(second.out.stdout);
    if (summary?.counts.succeeded !== items) problems.push(`succeeded: ${summary?.counts.succeeded ?? "no summary"} of ${items}`);
    const answers = fullAnswersBySource(sim);
    const twice = sources.filter((s) => (answers.get(s) ?? 0) > 1);
    if (twice.length) problems.push(`answers streamed twice: ${twice.join(", ")}`);
    return {
      name: "SIGTERM mid-run, then the job file run again",
      items,
      elapsedS: (Date.now() - t0) / 1000,
      paidTwice: twice.length,
      problems,
      details: {
        firstExit: firstCode,
        answeredBeforeSigterm: answeredBefore,
        fullAnswersPerItem: Object.fromEntries(sources.map((s) => [s, answers.get(s) ?? 0])),
        stderr: problems.length ? `${first.out.stderr.slice(-2000)}\n---\n${second.out.stderr.slice(-2000)}` : undefined,
      },
    };
  } finally {
    for (const r of [first, second]) if (r && r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
    await sim.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export const CASES = { "worker-replacement": killAllWorkersCase, "sigterm-resume": sigtermResumeCase } as const;
export type CaseName = keyof typeof CASES;
