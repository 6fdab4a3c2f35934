/**
 * A bad --out is one line and exit 2 for every command that writes one (it was a stack trace,
 * exit 1 or a hang for `results`), and only regular files are read as documents (`extract
 * /dev/zero` read forever).
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers/cli.ts";

const dir = mkdtempSync(path.join(tmpdir(), "longdoc-out-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `longdoc <args>` with a deadline well under the test's: a hang shows as a kill, not a pass. */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", ...args], { cwd: ROOT, timeout: 20_000, env: { ...process.env, DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "" } });
    return { code: 0, stdout, stderr, killed: false };
  } catch (e) {
    const err = e as { code: number | null; stdout: string; stderr: string; killed: boolean };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr, killed: err.killed };
  }
}

const aFile = path.join(dir, "afile");
writeFileSync(aFile, "not a folder\n");
const job = path.join(dir, "job.yaml");
writeFileSync(job, "name: out\ndocuments:\n  - path: a.md\nprompt: Summarise.\n");
writeFileSync(path.join(dir, "a.md"), "# Memo\n\nCash rose.\n");

const bad: [string, RegExp][] = [
  [aFile, /^longdoc: --out .*afile: is a file, not a folder\n$/],
  [path.join(aFile, "below"), /^longdoc: --out .*below: cannot be created \(.*afile is a file, not a folder\)\n$/],
  ...(existsSync("/sys/kernel") ? ([["/sys/kernel", /^longdoc: --out \/sys\/kernel: (no folder can be written there|the folder is not writable)/]] as [string, RegExp][]) : []),
  ...(existsSync("/proc/1") ? ([["/proc/1", /^longdoc: --out \/proc\/1: (no folder can be written there|the folder is not writable)/]] as [string, RegExp][]) : []),
];

describe("a bad --out: one line, exit 2, nothing attempted", () => {
  for (const [out, message] of bad) {
    it(`results <id> --out ${out.startsWith(dir) ? path.relative(dir, out) : out}`, async () => {
      const r = await cli(["results", "0123456789abcdef", "--out", out, "--state", path.join(dir, "state")]);
      expect(r.killed).toBe(false);
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(2);
    });
  }

  it("run and retry say the same for the same mistakes", async () => {
    for (const out of [aFile, ...(existsSync("/sys/kernel") ? ["/sys/kernel"] : [])]) {
      const run = await cli(["run", job, "--out", out, "--state", path.join(dir, "state")]);
      expect(run.stderr.split("\n").filter(Boolean)).toHaveLength(1);
      expect(run.stderr).toMatch(/^longdoc: --out /);
      expect(run.code).toBe(2);
      const retry = await cli(["retry", "0123456789abcdef", "--out", out, "--state", path.join(dir, "state")]);
      expect(retry.stderr).toMatch(/^longdoc: --out /);
      expect(retry.code).toBe(2);
    }
  }, 60_000);

  it("a good --out that does not exist yet is not created by the check", async () => {
    const fresh = path.join(dir, "fresh", "out");
    const r = await cli(["results", "0123456789abcdef", "--out", fresh, "--state", path.join(dir, "state")]);
    expect(r.stderr).not.toMatch(/--out/);
    expect(existsSync(path.join(dir, "fresh"))).toBe(false);
  });
});

describe("only regular files are read as documents", () => {
  it("extract /dev/zero fails at once instead of reading forever", async () => {
    const r = await cli(["extract", "/dev/zero"]);
    expect(r.killed).toBe(false);
    expect(r.stderr).toBe("longdoc: /dev/zero: not a regular file (a device, pipe or socket); only regular files are read as documents\n");
    expect(r.code).toBe(1);
  });

  it("a named pipe likewise (nothing ever writes to it)", async () => {
    const fifo = path.join(dir, "pipe.txt");
    try {
      execFileSync("mkfifo", [fifo]);
    } catch {
      return; // no mkfifo here
    }
    const r = await cli(["extract", fifo]);
    expect(r.killed).toBe(false);
    expect(r.stderr).toMatch(/pipe\.txt: not a regular file/);
    expect(r.code).toBe(1);
  });

  it("a job cannot name a device either", async () => {
    const devJob = path.join(dir, "dev.yaml");
    writeFileSync(devJob, "name: dev\ndocuments:\n  - path: /dev/zero\nprompt: Summarise.\n");
    const r = await cli(["estimate", devJob, "--allow-outside"]);
    expect(r.killed).toBe(false);
    expect(r.stderr).toMatch(/documents\[0\]\.path: '\/dev\/zero' matches no file/);
  });
});
