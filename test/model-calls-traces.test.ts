import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../shared/job/record.ts";
import { startFleet } from "../shared/local/fleet.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { coordKeys } from "../shared/run/coord.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { submitJob } from "../shared/submit/submit.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { recordDeadTask } from "../shared/worker/dead.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { useLoopback } from "./helpers/loopback.ts";

const para = (i: number) => `## Section ${i}\n\nRevenue in unit ${i % 7} rose ${(i * 3) % 19}% to $${1000 + i * 11} million.\n`;

describe("traces that survive: partial reasoning and answer under attempts/", () => {
  // A paced stream (400 tokens/s) keeps each call in flight long enough for flushes and kills.
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 }, sim: { decodeTokensPerSecond: 400 } });
  let dir: string;
  let store: ObjectStore;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-traces-"));
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
  });
  const text = async (key: string) => new TextDecoder().decode((await store.getBytes(key)) ?? new Uint8Array());
  const itemKey = (jobId: string, itemId: string, file: string) => keys.item(jobId, itemId, file);

  it("a stream cut mid-way leaves its partial trace under its attempt; the retry succeeds with one final trace", async () => {
    await mkdir(path.join(dir, "docs"), { recursive: true });
    await writeFile(path.join(dir, "docs", "report.md"), Array.from({ length: 40 }, (_, i) => para(i)).join("\n"));
    const jobFile = path.join(dir, "cut.yaml");
    await writeFile(jobFile, "name: cut\ndocuments:\n  - path: docs/report.md\nprompt: What happened to revenue?\nthinking: { enabled: true, budget: 2048 }\n");
    // Prepare: the first call's connection drops after 20 deltas (mid-reasoning).
    const before = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "drop", afterDeltas: 20 });
    // Act
    const r = await runLocalJob({
      jobFile,
      outDir: path.join(dir, "out"),
      workers: 1,
      settings: loadSettings(loop.env()),
      log: silentLog,
      stack: loop.stack,
      fresh: true,
      timing: { backoffBaseMs: 10, backoffCapMs: 10, traceFlush: { bytes: 512, ms: 100 } },
    });
    // Assess
    const item = r.manifest.items[0]!;
    const calls = loop.sim.calls.slice(before);
    expect(calls.map((c) => c.outcome)).toEqual(["dropped", "ok"]);
    expect(item).toMatchObject({ status: "succeeded", attempts: 2 });
    const jobId = r.job.jobId;

    const first = (await store.getJson<AttemptRecord>(keys.attempt(jobId, item.id, 1)))!;
    expect(first).toMatchObject({
      attempt: 1,
      status: "failed",
      error: { kind: "model_unavailable" },
      requestId: calls[0]!.id,
      reasoning: `items/${item.id}/attempts/1.reasoning.md`,
      answer: null,
      usageEstimated: true,
      currency: "USD",
    });
    expect(first.error!.message).toMatch(/connection dropped|terminated/);
    expect(first.calls[0]).toMatchObject({ usageEstimated: true, usage: { inputTokens: calls[0]!.promptTokens } });
    expect(first.usage.outputTokens).toBeGreaterThan(0);
    expect(first.cost).toBeGreaterThan(0);

    const partial = await text(itemKey(jobId, item.id, "attempts/1.reasoning.md"));
    const final = await text(itemKey(jobId, item.id, "reasoning.md"));
    expect(partial.length).toBeGreaterThan(20);
    // The same request streams the same trace: what the cut call left is the start of the final one.
    expect(final.startsWith(partial)).toBe(true);
    expect(final.length).toBeGreaterThan(partial.length);
    expect(final.split("I will go through each document in order.").length).toBe(2);

    const second = (await store.getJson<AttemptRecord>(keys.attempt(jobId, item.id, 2)))!;
    expect(second).toMatchObject({ status: "succeeded", error: null, reasoning: `items/${item.id}/reasoning.md`, answer: `items/${item.id}/answer.md`, requestId: calls[1]!.id, finishReason: "stop" });
    // A finished attempt leaves no partial copies and no open record.
    const files = (await store.listKeys(itemKey(jobId, item.id, ""))).map((k) => k.slice(itemKey(jobId, item.id, "").length)).sort();
    // The journal of paid calls is gone too once the item has its result.
    expect(files).toEqual(["answer.md", "attempts/1.json", "attempts/1.reasoning.md", "attempts/2.json", "reasoning.md", "result.json"]);

    // The cut call is paid for too: the item's cost and usage include it.
    const result = (await store.getJson<ItemResult>(itemKey(jobId, item.id, "result.json")))!;
    expect(result.costUsd).toBeCloseTo(first.cost + second.cost, 9);
    expect(result.usage.inputTokens).toBe(calls[0]!.promptTokens + calls[1]!.promptTokens);
    expect(result.usageEstimated).toBe(true);
    expect(r.manifest.costUsd).toBeCloseTo(first.cost + second.cost, 6);
  }, 60_000);

  it("a worker killed mid-stream (SIGKILL) leaves its flushed trace; the next delivery closes the attempt as died and counts its cost", async () => {
    // Prepare: a job submitted straight to the queue, and two worker processes.
    const key = "inputs/killed/report.md";
    await store.put(key, "# Report\n\n" + Array.from({ length: 40 }, (_, i) => para(i)).join("\n"), "text/markdown");
    const spec = parseJobText("name: killed\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 2048 }\nlimits: { maxCostUsd: 5 }\n", "killed.yaml");
    const job: JobRecord = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, key) }], outputSchema: null },
    );
    const item = job.items[0]!;
    const fleet = await startFleet({
      stack: loop.stack,
      workers: 2,
      settings: loadSettings({ ...loop.env(), LONGDOC_LOG: "error" }),
      endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL },
      log: silentLog,
      timing: { leaseMs: 3000, traceFlush: { bytes: 256, ms: 100 } },
    });
    try {
      // Act: once the partial trace is in S3, kill the process streaming it.
      const partialKey = itemKey(job.jobId, item.id, "attempts/1.reasoning.md");
      await expect.poll(() => store.exists(partialKey), { timeout: 20_000, interval: 50 }).toBe(true);
      const claim = await loop.stack.dynamo.client.send(new GetItemCommand({ TableName: loop.stack.dynamo.table, Key: { pk: { S: coordKeys.claim(job.jobId, item.id) } } }));
      const owner = claim.Item!.owner!.S!;
      const victim = fleet.processes.find((p) => owner.includes(`-${p.pid}-`))!;
      victim.kill("SIGKILL");
      const open = (await store.getJson<AttemptRecord>(itemKey(job.jobId, item.id, "attempts/1.open.json")))!;
      expect(open).toMatchObject({ status: "running", reasoning: null, inFlightCalls: [{ label: null }] });
      expect(open.inFlightCalls[0]!.reservedCost).toBeGreaterThan(0);

      let m: Manifest | undefined;
      await expect.poll(async () => (m = await store.getJson<Manifest>(keys.manifest(job.jobId)))?.status, { timeout: 40_000, interval: 200 }).toBe("succeeded");
      // Assess
      const died = (await store.getJson<AttemptRecord>(keys.attempt(job.jobId, item.id, 1)))!;
      expect(died).toMatchObject({ status: "died", error: { kind: "worker_crashed" }, usageEstimated: true, reasoning: `items/${item.id}/attempts/1.reasoning.md` });
      expect(died.calls[0]!.usage.outputTokens).toBeGreaterThan(0);
      expect(died.cost).toBeGreaterThan(0);
      expect(await store.exists(itemKey(job.jobId, item.id, "attempts/1.open.json"))).toBe(false);
      expect((await text(partialKey)).length).toBeGreaterThan(0);
      const second = (await store.getJson<AttemptRecord>(keys.attempt(job.jobId, item.id, 2)))!;
      expect(second.status).toBe("succeeded");
      expect(m!.items[0]).toMatchObject({ status: "succeeded", attempts: 2 });
      expect(m!.items[0]!.costUsd).toBeCloseTo(died.cost + second.cost, 6);
      // The ledger holds what was paid, the dead call's counted cost included, and no reservation is left hanging.
      const spend = await loop.stack.dynamo.client.send(new GetItemCommand({ TableName: loop.stack.dynamo.table, Key: { pk: { S: coordKeys.spend(job.jobId) } } }));
      const nano = (a: string) => Number(spend.Item![a]!.N) / 1e9;
      expect(nano("spent")).toBeCloseTo(died.cost + second.cost, 6);
      expect(nano("committed")).toBeCloseTo(nano("spent"), 6);
    } finally {
      await fleet.stop();
    }
  }, 90_000);

  it("the dead-letter recorder closes the attempt a killed worker left open and counts its cost in the result and the ledger", async () => {
    // Prepare: one worker process, killed mid-stream; nothing else will deliver the task.
    const key = "inputs/dead/report.md";
    await store.put(key, "# Report\n\n" + Array.from({ length: 40 }, (_, i) => para(i)).join("\n"), "text/markdown");
    const spec = parseJobText("name: dead\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 2048 }\nlimits: { maxCostUsd: 5 }\n", "dead.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, key) }], outputSchema: null },
    );
    const item = job.items[0]!;
    const settings = loadSettings({ ...loop.env(), LONGDOC_LOG: "error" });
    const fleet = await startFleet({ stack: loop.stack, workers: 1, settings, endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL }, log: silentLog, timing: { traceFlush: { bytes: 256, ms: 100 } } });
    try {
      await expect.poll(() => store.exists(itemKey(job.jobId, item.id, "attempts/1.reasoning.md")), { timeout: 20_000, interval: 50 }).toBe(true);
      fleet.processes[0]!.kill("SIGKILL");
    } finally {
      await fleet.stop();
    }
    // Act: the task's deliveries ran out; the DLQ recorder takes it.
    const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table);
    const task = { v: 1 as const, jobId: job.jobId, itemId: item.id, bucket: loop.stack.bucket, documents: item.documents.map((d) => d.uri) };
    await recordDeadTask({ s3: loop.stack.s3, coord, log: silentLog, catalog: settings.catalog }, task, 1);
    // Assess
    const died = (await store.getJson<AttemptRecord>(keys.attempt(job.jobId, item.id, 1)))!;
    expect(died).toMatchObject({ status: "died", usageEstimated: true, reasoning: `items/${item.id}/attempts/1.reasoning.md` });
    expect(died.cost).toBeGreaterThan(0);
    const result = (await store.getJson<ItemResult>(itemKey(job.jobId, item.id, "result.json")))!;
    expect(result).toMatchObject({ status: "failed", error: { kind: "worker_crashed" }, usageEstimated: true, currency: "USD" });
    expect(result.error!.message).toContain("last error: worker_crashed: the worker stopped during this attempt");
    expect(result.cost).toBeCloseTo(died.cost, 9);
    const spend = await coord.spend(job.jobId);
    expect(spend.spentUsd).toBeCloseTo(died.cost, 6);
    expect(spend.committedUsd).toBeCloseTo(died.cost, 6);
  }, 60_000);
});
