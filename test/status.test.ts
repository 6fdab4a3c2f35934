import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys, ObjectStore } from "../shared/run/store.ts";
import type { JobRecord } from "../shared/job/record.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import type { BatchOutputLine } from "../cli/results.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { computeProgress, readProgress, type RunProgress } from "../shared/run/progress.ts";
import { localStateReader, openLocalState } from "../cli/readers.ts";
import { formatDuration } from "../cli/table.ts";
import { watchStatus } from "./helpers/watch.ts";
import { loadSettings } from "../shared/settings.ts";

const cli = async (args: string[]) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trimEnd().split("\n").pop()!) as T;

describe("status and results of a persisted local run, through the CLI", () => {
  let sim: Simulator;
  let dir: string;
  let state: string;
  let runOut: string;
  let manifest: Manifest;
  let jobId: string;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-status-"));
    state = path.join(dir, "state");
    runOut = path.join(dir, "run-out");
    await mkdir(path.join(dir, "docs"));
    await writeFile(path.join(dir, "docs", "a.md"), "# Memo A\n\nCash rose by 4%.\n");
    await writeFile(path.join(dir, "docs", "b.md"), "# Memo B\n\nDebt fell; the board approved a buyback.\n");
    await writeFile(path.join(dir, "docs", "c.md"), ""); // an empty document fails its own item
    const jobFile = path.join(dir, "job.yaml");
    await writeFile(jobFile, "name: status-test\ndocuments:\n  - path: docs/*.md\nprompt: What changed?\nthinking: { enabled: true, budget: 512 }\n");
    const run = await runLocalJob({ inProcess: true,
      jobFile,
      outDir: runOut,
      workers: 1,
      settings: loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL }),
      log: silentLog,
      dataDir: state,
    });
    manifest = run.manifest;
    jobId = run.job.jobId;
    // runLocalJob stopped its emulator: from here on the run exists only in the state on disk.
    expect(manifest).toMatchObject({ status: "partial", counts: { total: 3, succeeded: 2, failed: 1, skipped: 0 } });
  }, 120_000);

  afterAll(async () => {
    await sim?.stop();
  });

  it("status: counts, tokens and cost in a table; --json puts the progress on the last line; exit 3 as some items failed", async () => {
    const r = await cli(["status", jobId, "--json", "--state", state]);
    expect(r.code).toBe(3);
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`job ${jobId} (status-test, model qwen3-max): partial`);
    expect(r.stderr).toMatch(/succeeded\s+failed\s+skipped\s+queued\s+retrying\s+total\n[- ]+\n\s+2\s+1\s+0\s+0\s+0\s+3\n/);
    expect(r.stderr).toContain(`tokens: ${manifest.usage.inputTokens} input`);
    const p = lastJson<RunProgress>(r.stdout);
    const { items: _items, ...summary } = manifest;
    expect(p).toMatchObject({ ...summary, counts: { ...manifest.counts, queued: 0, retrying: 0 } });
    expect(p.etaMs).toBe(0);
    expect(p.elapsedMs).toBe(Date.parse(manifest.finishedAt!) - Date.parse(manifest.startedAt));
  });

  it("status --watch on a run that is over prints the status and returns at once", async () => {
    const r = await cli(["status", jobId, "--watch", "--state", state]);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(": partial");
  });

  it("results --format jsonl: one OpenAI Batch output line per item, matching the manifest, answers and usage", async () => {
    const out = path.join(dir, "jsonl");
    const r = await cli(["results", jobId, "--format", "jsonl", "--out", out, "--state", state]);
    expect(r.code).toBe(0);
    const file = path.join(out, jobId, "results.jsonl");
    expect(r.stdout).toContain(file);
    const text = await readFile(file, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    // The failed items' lines are in errors.jsonl, as OpenAI's error file; merged back in item order here.
    const errorsFile = path.join(out, jobId, "errors.jsonl");
    const parse = (t: string) => t.trimEnd().split("\n").map((l) => JSON.parse(l) as BatchOutputLine);
    const succeeded = parse(text);
    const failed = parse(await readFile(errorsFile, "utf8"));
    expect(succeeded.every((l) => l.error === null) && failed.every((l) => l.error !== null)).toBe(true);
    const lines = manifest.items.map((i) => [...succeeded, ...failed].find((l) => l.custom_id === i.id)!);
    expect(lines.map((l) => l.custom_id)).toEqual(manifest.items.map((i) => i.id));
    expect(new Set(lines.map((l) => l.id)).size).toBe(lines.length);
    for (const [n, line] of lines.entries()) {
      const item = manifest.items[n]!;
      expect(line.id).toMatch(/^batch_req_[0-9a-f]+$/);
      expect(Object.keys(line).sort()).toEqual(["custom_id", "error", "id", "response"]);
      if (item.status === "succeeded") {
        expect(line.error).toBeNull();
        const res = line.response!;
        expect(res.status_code).toBe(200);
        expect(res.request_id).toBeTruthy();
        expect(res.body).toMatchObject({ object: "chat.completion", model: "qwen3-max", choices: [{ index: 0, message: { role: "assistant" } }] });
        expect(typeof res.body.created).toBe("number");
        const choice = res.body.choices[0]!;
        expect(choice.finish_reason).toBe("stop");
        expect(choice.message.content).toBe(await readFile(path.join(runOut, jobId, item.answer!), "utf8"));
        expect(choice.message.reasoning_content).toBe(await readFile(path.join(runOut, jobId, item.reasoning!), "utf8"));
        expect(choice.message.content).toContain("longdoc-sim");
        expect(res.body.usage).toEqual({
          prompt_tokens: item.usage.inputTokens,
          completion_tokens: item.usage.outputTokens,
          total_tokens: item.usage.inputTokens + item.usage.outputTokens,
          completion_tokens_details: { reasoning_tokens: item.usage.reasoningTokens },
          prompt_tokens_details: { cached_tokens: item.usage.cachedTokens },
        });
      } else {
        expect(line.response).toBeNull();
        expect(line.error).toEqual({ code: item.error!.kind, message: item.error!.message });
        expect(line.error!.code).toBe("document_empty");
      }
    }
    // The same run downloads to the same bytes.
    await cli(["results", jobId, "--format", "jsonl", "--out", out, "--state", state]);
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("results: copies the run to <out>/<jobId>/ with the same files as the run's own mirror", async () => {
    const out = path.join(dir, "copy");
    const r = await cli(["results", jobId, "--out", out, "--state", state]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(path.join(out, jobId));
    const list = async (root: string) =>
      (await readdir(root, { recursive: true, withFileTypes: true }))
        .filter((f) => f.isFile())
        .map((f) => path.relative(root, path.join(f.parentPath, f.name)))
        .sort();
    const files = await list(path.join(out, jobId));
    expect(files).toEqual(await list(path.join(runOut, jobId)));
    expect(files).toContain("manifest.json");
    for (const f of files) expect(await readFile(path.join(out, jobId, f), "utf8")).toBe(await readFile(path.join(runOut, jobId, f), "utf8"));
  });

  it("an unknown job id exits 1 and lists the job ids in the state; no state exits 1 saying so; a bad format is a usage error", async () => {
    const out = ["--out", path.join(dir, "x")];
    for (const cmd of [["status"], ["status", "--watch"], ["results", ...out], ["results", "--format", "jsonl", ...out]]) {
      const r = await cli([cmd[0]!, "no-such-job-20200101-000000-abcd", ...cmd.slice(1), "--state", state]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("no job 'no-such-job-20200101-000000-abcd'");
      expect(r.stderr).toContain(`most recent: ${jobId}`);
    }
    const missing = await cli(["status", jobId, "--state", path.join(dir, "no-state-here")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no local runs in '.*no-state-here' \(no emulator state there\)/);
    expect((await readdir(dir)).includes("no-state-here")).toBe(false);
    expect((await cli(["results", jobId, "--format", "xml", "--state", state])).code).toBe(2);
    expect((await cli(["status"])).code).toBe(2);
  });
});

// ── progress from a made-up partial run ───────────────────────────────────────────────────────

const T0 = Date.parse("2026-01-05T10:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

function fakeJob(jobId: string, n: number): JobRecord {
  return {
    version: 1,
    jobId,
    name: "fake",
    model: "qwen3-max",
    submittedAt: iso(T0),
    spec: {} as JobRecord["spec"],
    outputSchema: null,
    limits: { concurrency: 2, rpm: 60, tpm: 100_000, maxCostUsd: null, maxCost: null, maxDocumentBytes: 1 << 20 },
    currency: "USD",
    region: "ap-southeast-1",
    maxReceives: 3,
    maxAttempts: 3,
    items: Array.from({ length: n }, (_, i) => ({ id: `item-${i + 1}`, documents: [{ source: `d${i + 1}.md`, uri: `s3://b/d${i + 1}.md` }] })),
  };
}

function fakeResult(id: string, status: ItemResult["status"], finishedAtMs: number, tokens: number): ItemResult {
  return {
    version: 1,
    id,
    status,
    attempts: 1,
    documents: [{ source: `${id}.md` }],
    error: status === "succeeded" ? null : { kind: "model_error", message: "boom" },
    usage: { inputTokens: tokens, outputTokens: tokens / 10, reasoningTokens: tokens / 20, cachedTokens: 0 },
    cost: tokens / 1e6,
    currency: "USD",
    costUsd: tokens / 1e6,
    tier: null,
    model: "qwen3-max",
    finishReason: status === "succeeded" ? "stop" : null,
    requestId: null,
    answer: null,
    reasoning: null,
    startedAt: iso(T0),
    finishedAt: iso(finishedAtMs),
    durationMs: finishedAtMs - T0,
  };
}

describe("progress and ETA", () => {
  let stack: LocalStack;
  let store: ObjectStore;

  beforeAll(async () => {
    stack = await startLocalStack();
    store = new ObjectStore(stack.s3, stack.bucket);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("a partial run: counts from the results that exist, queued and retrying items, tokens, cost, and an ETA from the finish rate", async () => {
    const job = fakeJob("fake-20260105-100000-aaaa", 4);
    await store.putJson(keys.job(job.jobId), job);
    const now = () => T0 + 60_000;
    // Nothing finished yet: no rate, so no ETA.
    let p = await readProgress(store, job.jobId, { now });
    expect(p).toMatchObject({ status: "running", counts: { total: 4, succeeded: 0, failed: 0, skipped: 0, queued: 4, retrying: 0 }, etaMs: null, itemsPerMinute: null, elapsedMs: 60_000, finishedAt: null });

    await store.putJson(keys.item(job.jobId, "item-1", "result.json"), fakeResult("item-1", "succeeded", T0 + 20_000, 1000));
    await store.putJson(keys.item(job.jobId, "item-2", "result.json"), fakeResult("item-2", "failed", T0 + 40_000, 2000));
    await store.putJson(keys.attempt(job.jobId, "item-3", 1), { kind: "rate_limited", message: "429" });
    p = await readProgress(store, job.jobId, { now });
    // 2 finished in 60 s: 2 per minute, so the 2 left take another minute.
    expect(p).toMatchObject({
      status: "running",
      counts: { total: 4, succeeded: 1, failed: 1, skipped: 0, queued: 2, retrying: 1 },
      usage: { inputTokens: 3000, outputTokens: 300, reasoningTokens: 150, cachedTokens: 0 },
      costUsd: 0.003,
      elapsedMs: 60_000,
      itemsPerMinute: 2,
      etaMs: 60_000,
      finishedAt: null,
    });
    // Later with nothing new finished, the rate falls and the ETA grows.
    expect((await readProgress(store, job.jobId, { now: () => T0 + 120_000 })).etaMs).toBe(120_000);

    await store.putJson(keys.item(job.jobId, "item-3", "result.json"), fakeResult("item-3", "succeeded", T0 + 90_000, 1000));
    await store.putJson(keys.item(job.jobId, "item-4", "result.json"), fakeResult("item-4", "skipped", T0 + 95_000, 0));
    p = await readProgress(store, job.jobId, { now: () => T0 + 500_000 });
    // Done: elapsed ends at the last result, no ETA left.
    expect(p).toMatchObject({ status: "partial", counts: { succeeded: 2, failed: 1, skipped: 1, queued: 0, retrying: 0 }, etaMs: 0, elapsedMs: 95_000, finishedAt: iso(T0 + 95_000) });
  });

  it("computeProgress agrees with buildManifest's status and reports halted and cancelled runs", () => {
    const job = fakeJob("fake-20260105-100000-bbbb", 2);
    const results = new Map([["item-1", fakeResult("item-1", "succeeded", T0 + 1000, 100)]]);
    expect(computeProgress({ job, results, now: T0 + 4000 })).toMatchObject({ status: "running", etaMs: 4000, itemsPerMinute: 15 });
    results.set("item-2", fakeResult("item-2", "skipped", T0 + 2000, 0));
    expect(computeProgress({ job, results, halted: true, now: T0 + 4000 })).toMatchObject({ status: "halted", halted: true, etaMs: 0, elapsedMs: 2000 });
  });

  it("an unknown job id names the most recent runs, newest first", async () => {
    await store.putJson(keys.job("older-20250101-000000-0001"), fakeJob("older-20250101-000000-0001", 1));
    await store.putJson(keys.job("newer-20270101-000000-0002"), fakeJob("newer-20270101-000000-0002", 1));
    await expect(readProgress(store, "nope")).rejects.toThrow(/no job 'nope' in s3:\/\/longdoc-runs; most recent: newer-20270101-000000-0002, fake-20260105-100000-aaaa, older-20250101-000000-0001/);
  });

  it("formats durations", () => {
    expect([formatDuration(null), formatDuration(400), formatDuration(12_400), formatDuration(185_000), formatDuration(3_725_000)]).toEqual(["?", "0.4s", "12s", "3m 05s", "1h 02m"]);
  });
});

describe("reading local state another emulator is writing", () => {
  it("a reader sees the state as it was when opened; localStateReader reopens when the files change, also for rewritten objects", async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), "longdoc-state-")), "state");
    const writer = await startLocalStack({ dataDir: dir });
    try {
      const w = new ObjectStore(writer.s3, writer.bucket);
      await w.put("runs/x/a.txt", "one", "text/plain");
      const snapshot = await openLocalState(dir);
      const reader = localStateReader(dir);
      try {
        expect(await (await reader.store()).listKeys("runs/")).toEqual(["runs/x/a.txt"]);
        await w.put("runs/x/b.txt", "two", "text/plain");
        await w.put("runs/x/a.txt", "one, rewritten longer", "text/plain");
        // fauxqs loads object metadata at start and never re-reads it: new keys stay invisible,
        // while a rewritten object's body is read from disk as it is now (under its old checksum,
        // which longdoc's clients do not check: shared/run/store.ts, s3Client). A snapshot is
        // only a listing; the reader below reopens.
        expect(await snapshot.store.listKeys("runs/")).toEqual(["runs/x/a.txt"]);
        expect(new TextDecoder().decode(await snapshot.store.getBytes("runs/x/a.txt"))).toBe("one, rewritten longer");
        const text = await reader.read(async (store) => ({
          keys: await store.listKeys("runs/"),
          a: new TextDecoder().decode(await store.getBytes("runs/x/a.txt")),
        }));
        expect(text).toEqual({ keys: ["runs/x/a.txt", "runs/x/b.txt"], a: "one, rewritten longer" });
      } finally {
        await snapshot.close();
        await reader.close();
      }
    } finally {
      await writer.stop();
    }
  });
});

describe("status --watch in another process", () => {
  it("follows a run whose results another process writes into the same state, and ends when the run does", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-watch-"));
    const state = path.join(dir, "state");
    const stack = await startLocalStack({ dataDir: state });
    try {
      const store = new ObjectStore(stack.s3, stack.bucket);
      const job = { ...fakeJob("watch-20260105-100000-cccc", 3), submittedAt: new Date().toISOString() };
      await store.putJson(keys.job(job.jobId), job);
      await store.putJson(keys.item(job.jobId, "item-1", "result.json"), fakeResult("item-1", "succeeded", Date.now(), 100));

      const watcher = watchStatus(["--json", "--state", state], { jobId: job.jobId });
      // The watcher has read the state as it was (1 of 3 finished) before the rest is written.
      await watcher.firstRead;
      expect(watcher.out.stderr).toMatch(/1\/3 items/);
      for (const id of ["item-2", "item-3"]) {
        await new Promise((r) => setTimeout(r, 300));
        await store.putJson(keys.item(job.jobId, id, "result.json"), fakeResult(id, "succeeded", Date.now(), 100));
      }
      const timer = setTimeout(() => watcher.kill(), 30_000);
      const code = await watcher.exited;
      clearTimeout(timer);
      expect(code).toBe(0);
      const p = lastJson<RunProgress>(watcher.out.stdout);
      expect(p).toMatchObject({ jobId: job.jobId, status: "succeeded", counts: { total: 3, succeeded: 3, queued: 0 }, etaMs: 0 });
      expect(watcher.out.stderr).toContain(": succeeded");
    } finally {
      await stack.stop();
    }
  });
});
