import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../shared/job/record.ts";
import { startFleet, type Fleet } from "../shared/local/fleet.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { coordKeys } from "../shared/run/coord.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { deployment, loadSettings } from "../shared/settings.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { useLoopback } from "./helpers/loopback.ts";

/**
 * The local fleet as AWS runs it: separate worker processes that share nothing but the emulated
 * S3/SQS and the coordination table. Every claim here rests on processes, not on shared memory.
 */
describe("the fleet of worker processes", () => {
  // A slow decode keeps each call in flight for a few seconds, so races and kills land mid-stream.
  const loop = useLoopback({ sim: { decodeTokensPerSecond: 150 } });

  async function submit(name: string, n: number, extra = ""): Promise<JobRecord> {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const documents = [];
    for (let i = 0; i < n; i++) {
      const key = `inputs/${name}/doc-${i}.md`;
      await store.put(key, `# Note ${i}\n\n` + `Revenue grew ${i} percent in region ${i}. `.repeat(40), "text/markdown");
      documents.push({ source: `doc-${i}.md`, uri: s3Uri(loop.stack.bucket, key) });
    }
    const spec = parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\nmaxOutputTokens: 1024\n${extra}`, `${name}.yaml`);
    return submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents, outputSchema: null },
    );
  }

  async function fleetOf(workers: number): Promise<Fleet> {
    const settings = loadSettings({ ...loop.env(), LONGDOC_LOG: "error" });
    return startFleet({ stack: loop.stack, workers, settings, endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL }, log: silentLog, timing: { leaseMs: 3000 } });
  }

  async function finalManifest(job: JobRecord, timeoutMs = 60_000): Promise<Manifest> {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = await store.getJson<Manifest>(keys.manifest(job.jobId));
      if (m && m.status !== "running") return m;
      if (Date.now() > until) throw new Error(`job ${job.jobId} did not finish in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const okCallsFor = (job: JobRecord) => loop.sim.calls.filter((c) => c.status === 200 && c.documents.some((d) => job.items.some((i) => i.documents[0]!.source === d.source)));

  it("two processes racing on the same task make one model call", async () => {
    const job = await submit("race", 1);
    // The same task delivered twice at once (SQS is at-least-once).
    const body = JSON.stringify({ v: 1, jobId: job.jobId, itemId: job.items[0]!.id, bucket: loop.stack.bucket, documents: job.items[0]!.documents.map((d) => d.uri) });
    await loop.stack.sqs.send(new SendMessageCommand({ QueueUrl: loop.stack.queueUrl, MessageBody: body }));
    const before = loop.sim.calls.length;
    const fleet = await fleetOf(2);
    try {
      const m = await finalManifest(job);
      expect(m.counts).toMatchObject({ total: 1, succeeded: 1 });
      expect(loop.sim.calls.slice(before).filter((c) => c.status === 200)).toHaveLength(1);
    } finally {
      await fleet.stop();
    }
  }, 90_000);

  it("a worker killed mid-stream (SIGKILL): another takes the item over once its claim expires; one result", async () => {
    const job = await submit("killed", 1);
    // Earlier tests sent documents of the same names: only this test's calls count.
    const before = loop.sim.calls.length;
    const fleet = await fleetOf(2);
    try {
      const item = job.items[0]!;
      // Wait for a claim, then kill the process that holds it.
      let owner: string | undefined;
      for (let i = 0; i < 100 && !owner; i++) {
        const got = await loop.stack.dynamo.client.send(new GetItemCommand({ TableName: loop.stack.dynamo.table, Key: { pk: { S: coordKeys.claim(job.jobId, item.id) } } }));
        owner = got.Item?.owner?.S;
        if (!owner) await new Promise((r) => setTimeout(r, 100));
      }
      expect(owner).toBeDefined();
      // Mid-stream: the simulator has the request and is still decoding.
      for (let i = 0; i < 100 && !loop.sim.calls.slice(before).some((c) => c.status === 200 && c.documents.some((d) => d.source === item.documents[0]!.source)); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      // At once: on a busy machine a short answer could otherwise finish before the kill lands.
      const victim = fleet.processes.find((p) => owner!.includes(`-${p.pid}-`))!;
      expect(victim).toBeDefined();
      victim.kill("SIGKILL");
      const m = await finalManifest(job);
      expect(m.counts).toMatchObject({ total: 1, succeeded: 1 });
      expect(m.items[0]!.attempts).toBe(2);
      expect(okCallsFor(job).length).toBeGreaterThanOrEqual(1);
    } finally {
      await fleet.stop();
    }
  }, 90_000);

  it("four processes under a cost cap: spend stays within it; the rest are skipped with cost_cap", async () => {
    // Each call's worst case (input + 1024 output tokens) is reserved at about $0.007 and settles near $0.0013: the cap fits a handful.
    const job = await submit("capped", 12, "thinking: { enabled: false }\nlimits: { maxCostUsd: 0.009 }\n");
    const fleet = await fleetOf(4);
    try {
      const m = await finalManifest(job);
      expect(m.costUsd).toBeLessThanOrEqual(0.009);
      expect(m.counts.succeeded).toBeGreaterThan(0);
      expect(m.counts.skipped).toBeGreaterThan(0);
      expect(m.items.filter((i) => i.status === "skipped").every((i) => i.error?.kind === "cost_cap")).toBe(true);
      expect(m.counts.succeeded + m.counts.skipped).toBe(12);
    } finally {
      await fleet.stop();
    }
  }, 90_000);

  it("a 429 storm: tasks come back after growing waits, no worker holds a refused task more than a few seconds, and every item succeeds once", async () => {
    const job = await submit("storm", 6);
    loop.sim.injectFaults({ kind: "429", count: 12 });
    const before = loop.sim.calls.length;
    const returns: { messageId: string; delayS: number; ceilingS: number; heldMs: number }[] = [];
    const settings = loadSettings({ ...loop.env(), LONGDOC_LOG: "info" });
    const fleet = await startFleet({
      stack: loop.stack,
      workers: 3,
      settings,
      endpoint: { apiKey: "sk-test", baseURL: loop.sim.baseURL },
      log: silentLog,
      timing: { leaseMs: 3000, backoffBaseMs: 500 },
      onLog: (line) => {
        if (line.msg === "task waits in the queue" && /rate_limited/.test(String(line.reason))) returns.push(line as unknown as (typeof returns)[number]);
      },
    });
    try {
      const m = await finalManifest(job, 80_000);
      expect(m.counts).toMatchObject({ total: 6, succeeded: 6 });
      const calls = loop.sim.calls.slice(before);
      expect(calls.filter((c) => c.status === 429).length).toBe(12);
      expect(calls.filter((c) => c.status === 200)).toHaveLength(6);
      // Every refusal went back to the queue rather than being slept on in the worker.
      expect(returns).toHaveLength(12);
      // A worker may sleep up to maxInProcessWaitMs for quota before it calls; the rest is work, not waiting.
      expect(Math.max(...returns.map((r) => r.heldMs))).toBeLessThan(deployment.maxInProcessWaitMs + 3000);
      const byTask = Map.groupBy(returns, (r) => r.messageId);
      expect([...byTask.values()].some((rs) => rs.length >= 2)).toBe(true);
      for (const rs of byTask.values()) {
        // Each wait is drawn under a ceiling that doubles with every return of the same task.
        for (const r of rs) expect(r.delayS).toBeLessThanOrEqual(Math.ceil(r.ceilingS));
        for (let i = 1; i < rs.length; i++) expect(rs[i]!.ceilingS).toBeGreaterThan(rs[i - 1]!.ceilingS);
      }
    } finally {
      await fleet.stop();
    }
  }, 90_000);
});
