import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCatalog } from "../shared/model/catalog.ts";
import { loadJobForSubmit, submitLoadedJob } from "../shared/submit/load.ts";
import { driveLocalRun, runLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import type { BatchOutputLine } from "../cli/results.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import type { RunProgress } from "../shared/run/progress.ts";
import { watchStatus } from "./helpers/watch.ts";
import { loadSettings } from "../shared/settings.ts";

// A fauxqs stack stands in for AWS: the CLI reaches it only through the AWS SDK's own settings
// (AWS_ENDPOINT_URL, credentials, region) and the stack coordinates, as it would a deployed stack.

const BIN = path.resolve("bin/longdoc.ts");

const cli = async (args: string[], env: Record<string, string | undefined>, cwd: string) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, cwd, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trimEnd().split("\n").pop()!) as T;

const list = async (root: string) =>
  (await readdir(root, { recursive: true, withFileTypes: true }))
    .filter((f) => f.isFile())
    .map((f) => path.relative(root, path.join(f.parentPath, f.name)))
    .sort();

describe("status and results --deployed, on a stack standing in for AWS", () => {
  let sim: Simulator;
  let stack: LocalStack;
  let dir: string;
  /** The CLI's working folder: no .sst/outputs.json unless a test writes one. */
  let cwd: string;
  let runOut: string;
  let manifest: Manifest;
  let jobId: string;
  let aws: Record<string, string | undefined>;
  let modelEnv: Record<string, string>;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
    stack = await startLocalStack();
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-status-deployed-"));
    cwd = path.join(dir, "cwd");
    runOut = path.join(dir, "run-out");
    await mkdir(cwd);
    await mkdir(path.join(dir, "docs"));
    await writeFile(path.join(dir, "docs", "a.md"), "# Memo A\n\nCash rose by 4%.\n");
    await writeFile(path.join(dir, "docs", "b.md"), "# Memo B\n\nDebt fell; the board approved a buyback.\n");
    await writeFile(path.join(dir, "docs", "c.md"), ""); // an empty document fails its own item
    const jobFile = path.join(dir, "job.yaml");
    await writeFile(jobFile, "name: deployed-status\ndocuments:\n  - path: docs/*.md\nprompt: What changed?\nthinking: { enabled: true, budget: 512 }\n");
    modelEnv = { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL };
    const run = await runLocalJob({ inProcess: true, jobFile, outDir: runOut, workers: 1, settings: loadSettings(modelEnv), log: silentLog, stack });
    manifest = run.manifest;
    jobId = run.job.jobId;
    expect(manifest).toMatchObject({ status: "partial", counts: { total: 3, succeeded: 2, failed: 1, skipped: 0 } });
    aws = {
      LONGDOC_BUCKET: stack.bucket,
      LONGDOC_QUEUE_URL: stack.queueUrl,
      AWS_ENDPOINT_URL: stack.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      AWS_PROFILE: undefined,
      AWS_DEFAULT_REGION: undefined,
      AWS_SESSION_TOKEN: undefined,
      AWS_ENDPOINT_URL_S3: undefined,
    };
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await sim?.stop();
  });

  it("status --deployed --json: the table, and the progress on the last line agrees with the manifest; exit 3 as an item failed", async () => {
    const r = await cli(["status", jobId, "--deployed", "--json"], aws, cwd);
    expect(r.code).toBe(3);
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`job ${jobId} (deployed-status, model qwen3-max): partial`);
    expect(r.stderr).toMatch(/succeeded\s+failed\s+skipped\s+queued\s+retrying\s+total\n[- ]+\n\s+2\s+1\s+0\s+0\s+0\s+3\n/);
    expect(r.stderr).toContain(`tokens: ${manifest.usage.inputTokens} input`);
    const p = lastJson<RunProgress>(r.stdout);
    const { items: _items, ...summary } = manifest;
    expect(p).toMatchObject({ ...summary, counts: { ...manifest.counts, queued: 0, retrying: 0 }, halted: false, cancelled: false, etaMs: 0 });
    expect(p.elapsedMs).toBe(Date.parse(manifest.finishedAt!) - Date.parse(manifest.startedAt));
  });

  it("status --deployed --watch on a run that is over prints the status and returns at once", async () => {
    const started = Date.now();
    const r = await cli(["status", jobId, "--deployed", "--watch"], aws, cwd);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`job ${jobId} (deployed-status, model qwen3-max): partial`);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("results --deployed --format jsonl: one OpenAI Batch output line per item, matching the manifest, answers and usage", async () => {
    const out = path.join(dir, "jsonl");
    const r = await cli(["results", jobId, "--deployed", "--format", "jsonl", "--out", out], aws, cwd);
    expect(r.code, r.stderr).toBe(0);
    const file = path.join(out, jobId, "results.jsonl");
    expect(r.stdout).toContain(`wrote 2 succeeded line(s) to ${file}`);
    expect(r.stdout).toContain(`wrote 1 failed or skipped line(s) to ${path.join(out, jobId, "errors.jsonl")}`);
    // Succeeded lines, then the error file's, back in the job's item order.
    const read = async (f: string) => (await readFile(f, "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l) as BatchOutputLine);
    const all = [...(await read(file)), ...(await read(path.join(out, jobId, "errors.jsonl")))];
    const lines = manifest.items.map((i) => all.find((l) => l.custom_id === i.id)!);
    expect(lines.map((l) => l.custom_id)).toEqual(manifest.items.map((i) => i.id));
    for (const [n, line] of lines.entries()) {
      const item = manifest.items[n]!;
      if (item.status === "succeeded") {
        expect(line.error).toBeNull();
        const body = line.response!.body;
        expect(line.response!.status_code).toBe(200);
        expect(body).toMatchObject({ object: "chat.completion", model: "qwen3-max" });
        expect(body.choices[0]!.message.content).toBe(await readFile(path.join(runOut, jobId, item.answer!), "utf8"));
        expect(body.choices[0]!.message.reasoning_content).toBe(await readFile(path.join(runOut, jobId, item.reasoning!), "utf8"));
        expect(body.usage).toEqual({
          prompt_tokens: item.usage.inputTokens,
          completion_tokens: item.usage.outputTokens,
          total_tokens: item.usage.inputTokens + item.usage.outputTokens,
          completion_tokens_details: { reasoning_tokens: item.usage.reasoningTokens },
          prompt_tokens_details: { cached_tokens: item.usage.cachedTokens },
        });
      } else {
        expect(line.response).toBeNull();
        expect(line.error).toEqual({ code: "document_empty", message: item.error!.message });
      }
    }
  });

  it("results --deployed: copies the run from the bucket, the same files as the run's own mirror", async () => {
    const out = path.join(dir, "copy");
    const r = await cli(["results", jobId, "--deployed", "--out", out], aws, cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`of run ${jobId} (partial) to ${path.join(out, jobId)}`);
    const files = await list(path.join(out, jobId));
    expect(files).toEqual(await list(path.join(runOut, jobId)));
    expect(files).toContain("manifest.json");
    for (const f of files) expect(await readFile(path.join(out, jobId, f), "utf8")).toBe(await readFile(path.join(runOut, jobId, f), "utf8"));
  });

  it("an unknown job id exits 1 naming the bucket and the runs in it", async () => {
    const out = ["--out", path.join(dir, "x")];
    for (const cmd of [["status"], ["status", "--watch", "--json"], ["results", ...out], ["results", "--format", "jsonl", ...out]]) {
      const r = await cli([cmd[0]!, "no-such-job-20200101-000000-abcd", "--deployed", ...cmd.slice(1)], aws, cwd);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(`no job 'no-such-job-20200101-000000-abcd' in s3://${stack.bucket} (bucket from LONGDOC_BUCKET); most recent: ${jobId}`);
    }
    expect((await readdir(dir)).includes("x")).toBe(false);
  });

  it("finds the bucket in .sst/outputs.json (the queue is not needed); no stack at all exits 1; --state with --deployed is a usage error", async () => {
    const { LONGDOC_BUCKET: _b, LONGDOC_QUEUE_URL: _q, ...sdk } = aws;
    const noStack = { ...sdk, LONGDOC_BUCKET: undefined, LONGDOC_QUEUE_URL: undefined };
    const none = await cli(["status", jobId, "--deployed"], noStack, cwd);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("no deployed stack: the runs bucket and the task queue URL unknown");

    const withOutputs = path.join(dir, "with-outputs");
    await mkdir(path.join(withOutputs, ".sst"), { recursive: true });
    await writeFile(path.join(withOutputs, ".sst", "outputs.json"), JSON.stringify({ bucket: stack.bucket }));
    const r = await cli(["status", jobId, "--deployed", "--json"], noStack, withOutputs);
    expect(r.code, r.stderr).toBe(3);
    expect(lastJson<RunProgress>(r.stdout)).toMatchObject({ jobId, status: "partial" });
    const unknown = await cli(["results", "nope", "--deployed", "--out", path.join(dir, "y")], noStack, withOutputs);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`in s3://${stack.bucket} (bucket from .sst/outputs.json 'bucket')`);

    expect((await cli(["status", jobId, "--deployed", "--state", path.join(dir, "s")], aws, cwd)).code).toBe(2);
    expect((await cli(["results", jobId, "--deployed", "--state", path.join(dir, "s")], aws, cwd)).code).toBe(2);
  });

  it("status --deployed --watch follows a submitted run while workers write its results, and ends when it does", async () => {
    const jobDir = path.join(dir, "watch");
    await mkdir(path.join(jobDir, "docs"), { recursive: true });
    await writeFile(path.join(jobDir, "docs", "x.md"), "# X\n\nRevenue doubled.\n");
    await writeFile(path.join(jobDir, "docs", "y.md"), "# Y\n\nMargins fell.\n");
    const jobFile = path.join(jobDir, "watch.yaml");
    await writeFile(jobFile, "name: deployed-watch\ndocuments:\n  - path: docs/*.md\nprompt: What changed?\n");
    // Submitted as `longdoc submit` would: the tasks wait in the queue, no worker runs yet.
    const job = await submitLoadedJob(
      { s3: stack.s3, sqs: stack.sqs, bucket: stack.bucket, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives },
      await loadJobForSubmit(jobFile, loadCatalog()),
    );

    const watcher = watchStatus(["--deployed", "--json"], { jobId: job.jobId, bin: BIN, cwd, env: { ...process.env, ...aws } });
    const timer = setTimeout(() => watcher.kill(), 45_000);
    try {
      // The watcher has read the run while nothing had finished, before any worker started.
      await watcher.firstRead;
      expect(watcher.out.stderr).toMatch(/0\/2 items/);
      const driven = await driveLocalRun({
        stack,
        job,
        endpoint: { apiKey: modelEnv.DASHSCOPE_API_KEY!, baseURL: sim.baseURL, usedSimulator: false },
        workers: 2,
        outDir: path.join(dir, "watch-out"),
        settings: loadSettings(modelEnv),
        log: silentLog,
      });
      expect(driven.manifest.status).toBe("succeeded");
      const code = await watcher.exited;
      expect(code, watcher.out.stderr).toBe(0);
      expect(watcher.out.stderr).toContain(`job ${job.jobId} (deployed-watch, model qwen3-max): succeeded`);
      const { items: _items, ...summary } = driven.manifest;
      expect(lastJson<RunProgress>(watcher.out.stdout)).toMatchObject({ ...summary, counts: { ...driven.manifest.counts, queued: 0 }, etaMs: 0 });
    } finally {
      clearTimeout(timer);
      watcher.kill();
    }
  }, 60_000);
});
