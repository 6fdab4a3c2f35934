import { execFile } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { readdir, readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { startSimulator } from "../shared/sim/index.ts";

const run = async (args: string[], env: Record<string, string> = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

describe("the longdoc command", () => {
  it("validate: exit 0 for a good file, 1 with file:line: field: message for a bad one", async () => {
    expect((await run(["validate", "jobs/examples/annual-reports.yaml"])).code).toBe(0);
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-cli-"));
    const bad = path.join(dir, "bad.yaml");
    await writeFile(bad, "name: x\ndocuments:\n  - path: a.md\nprompt: p\nmodle: qwen3-max\n");
    const r = await run(["validate", bad]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${bad}:5: modle: unknown field (did you mean 'model'?)\n`);
  });

  it("usage errors exit 2", async () => {
    expect((await run(["run"])).code).toBe(2);
    expect((await run(["run", "x.yaml", "--workers", "zero"])).code).toBe(2);
    expect((await run(["frobnicate"])).code).toBe(2);
  });

  it("retry and cancel check their options before opening any state: --workers 1 to 64, --out a folder", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-cli-opts-"));
    const file = path.join(dir, "a-file");
    await writeFile(file, "x");
    const many = await run(["retry", "x", "--workers", "100", "--state", path.join(dir, "s")]);
    expect(many.code).toBe(2);
    expect(many.stderr).toContain("--workers must be a whole number from 1 to 64, got '100'");
    for (const cmd of ["retry", "cancel"]) {
      const out = await run([cmd, "x", "--out", file, "--state", path.join(dir, "s")]);
      expect(out.code).toBe(2);
      expect(out.stderr).toContain(`--out ${file}: is a file, not a folder`);
    }
    expect(await readdir(dir)).toEqual(["a-file"]);
  });

  it("run --json: progress on stderr, a summary table, and the summary as the last stdout line", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-cli-run-"));
    await mkdir(path.join(dir, "docs"));
    await writeFile(path.join(dir, "docs", "a.md"), "# Memo\n\nCash rose.\n");
    await writeFile(path.join(dir, "docs", "b.txt"), "Debt fell.\n");
    const job = path.join(dir, "job.yaml");
    await writeFile(job, "name: cli-run\ndocuments:\n  - path: docs/*\nquestions:\n  - id: cash\n    ask: What happened to cash?\nthinking: { enabled: true, budget: 512 }\n");
    const r = await run(["run", job, "--json", "--out", path.join(dir, "out"), "--state", path.join(dir, "state")], { DASHSCOPE_API_KEY: "" });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/job cli-run-\d{8}-\d{6}-[0-9a-f]{4}: 2 item\(s\), model qwen3-max/);
    // With --json, stdout is JSON alone (so `| jq` works); the table goes to stderr.
    expect(r.stderr).toMatch(/2 succeeded, 0 failed, 0 skipped of 2/);
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ version: 1, job: "cli-run", status: "succeeded", counts: { total: 2, succeeded: 2 } });
    expect(summary.items).toBeUndefined();
  });

  it("a job whose documents are missing exits 1 naming the source", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-cli-missing-"));
    const job = path.join(dir, "job.yaml");
    await writeFile(job, "name: m\ndocuments:\n  - path: nowhere/*.pdf\nprompt: p\n");
    const r = await run(["run", job, "--state", path.join(dir, "state")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/documents\[0\]\.path: 'nowhere\/\*\.pdf' matches no file/);
  });

  it("never writes the API key to stdout, stderr, logs or the run's files, even when the key is refused", async () => {
    const KEY = "sk-SENTINEL-0123456789abcdef";
    const sim = await startSimulator({ port: 0, apiKey: "sk-a-different-key" });
    try {
      const dir = await mkdtemp(path.join(tmpdir(), "longdoc-cli-key-"));
      await mkdir(path.join(dir, "docs"));
      await writeFile(path.join(dir, "docs", "a.md"), "# Memo\n");
      const job = path.join(dir, "job.yaml");
      await writeFile(job, "name: key-test\ndocuments:\n  - path: docs/*\nprompt: Summarise.\n");
      const r = await run(["run", job, "--out", path.join(dir, "out"), "--state", path.join(dir, "state")], {
        DASHSCOPE_API_KEY: KEY,
        QWEN_BASE_URL: sim.baseURL,
        LONGDOC_LOG: "debug",
      });
      expect(r.code).toBe(3);
      expect(r.stdout).toContain("model_auth");
      expect(r.stdout + r.stderr).not.toContain(KEY);
      for (const file of await readdir(path.join(dir, "out"), { recursive: true, withFileTypes: true })) {
        if (file.isFile()) expect(await readFile(path.join(file.parentPath, file.name), "utf8")).not.toContain(KEY);
      }
    } finally {
      await sim.stop();
    }
  });
});
