import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createDeadLetterHandler } from "../shared/worker/dead.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { silentLog } from "../shared/log.ts";
import { queueDepth } from "../shared/local/inspect.ts";
import { runPoller } from "../shared/local/poller.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loadSettings } from "../shared/settings.ts";

async function docsJob(dir: string, name: string, count: number, extra = "") {
  await mkdir(path.join(dir, "docs"), { recursive: true });
  await Promise.all(Array.from({ length: count }, (_, i) => writeFile(path.join(dir, "docs", `n${String(i).padStart(2, "0")}.md`), `# Note ${i}\n\nValue ${i * 7}.\n`)));
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `name: ${name}\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nmaxOutputTokens: 256\n${extra}`);
  return file;
}

describe("item lifecycle", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1, maxReceives: 2 } });
  const env = () => loop.env();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-life-"));
  });

  it("lists every item exactly once when many workers finish together", async () => {
    // Four processes are enough to race on the last item (the finish counter's race itself is in test/coord.test.ts).
    const jobFile = await docsJob(path.join(dir, "many"), "many", 24);
    const run = await runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 4, settings: loadSettings(env()), log: silentLog, stack: loop.stack });
    const ids = run.manifest.items.map((i) => i.id);
    expect(ids).toHaveLength(24);
    expect(new Set(ids).size).toBe(24);
    expect(run.manifest.counts).toEqual({ total: 24, succeeded: 24, failed: 0, skipped: 0 });
    expect(run.manifest.items.every((i) => i.status === "succeeded" && i.attempts === 1)).toBe(true);
    expect(run.manifest.usage.inputTokens).toBe(run.manifest.items.reduce((s, i) => s + i.usage.inputTokens, 0));
  });

  it("records a task whose worker kept dying as failed, via the dead-letter queue", async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/dead/a.md", "# A\n", "text/markdown");
    const spec = parseJobText("name: dead\ndocuments:\n  - path: a.md\nprompt: p\n", "dead.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "a.md", uri: s3Uri(loop.stack.bucket, "inputs/dead/a.md") }], outputSchema: null },
    );
    await store.putJson(keys.attempt(job.jobId, job.items[0]!.id, 1), { attempt: 1, status: "died", error: { kind: "internal", message: "out of memory" } });
    const stop = new AbortController();
    const common = { sqs: loop.stack.sqs, waitTimeS: 1, functionTimeoutMs: 60_000, signal: stop.signal, batchSize: 10 };
    // A worker that dies on every delivery (as a Lambda killed by the runtime would).
    const crashing = runPoller({ ...common, queueUrl: loop.stack.queueUrl, handler: async () => { throw new Error("Runtime exited"); } });
    const deadLetters = runPoller({ ...common, queueUrl: loop.stack.dlqUrl, handler: createDeadLetterHandler(() => ({ s3: loop.stack.s3, coord: createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table), log: silentLog })) });
    await expect.poll(() => store.exists(keys.item(job.jobId, job.items[0]!.id, "result.json")), { timeout: 15_000, interval: 200 }).toBe(true);
    stop.abort();
    await Promise.all([crashing, deadLetters]);
    const result = await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json"));
    expect(result).toMatchObject({ status: "failed", attempts: 2, error: { kind: "worker_crashed" } });
    expect(result!.error!.message).toContain("last error: internal: out of memory");
    const manifest = await store.getJson<Manifest>(keys.manifest(job.jobId));
    expect(manifest).toMatchObject({ status: "failed", counts: { total: 1, failed: 1 } });
    expect(await queueDepth(loop.stack)).toBe(0);
  });

  it("refuses a job whose input alone is estimated over its cost cap, before any call", async () => {
    const jobFile = await docsJob(path.join(dir, "cap"), "cap", 3, "limits: { maxCostUsd: 0.000001 }\n");
    const before = loop.sim.calls.length;
    await expect(runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(env()), log: silentLog, stack: loop.stack })).rejects.toMatchObject({
      code: "cost_cap",
      message: expect.stringMatching(/job 'cap': its input alone is estimated at \$0\.\d+, over limits\.maxCostUsd \(\$0\.000001\)/),
    });
    expect(loop.sim.calls.length).toBe(before);
  });
  // The halt on a refused key and the spend cap are rules of one delivery: test/lifecycle-rules.test.ts.
});
