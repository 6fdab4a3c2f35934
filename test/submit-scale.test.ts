// Submit at scale, on the local stack (fauxqs SQS + S3, dynalite): tasks go out in parallel
// batches, each batch marked in the coordination store, so a submit killed part-way and run
// again with the same job id sends every task exactly once; a job whose quota need outlasts the
// task queue's retention is refused before anything is queued.
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator, type Coordinator } from "../shared/run/coord.ts";
import type { TaskMessage } from "../shared/run/queue.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { deployment } from "../shared/settings.ts";
import { estimateItems, type LoadedText } from "../shared/submit/estimate.ts";
import { quotaNeedFloor } from "../shared/submit/quota-need.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { expandItems } from "../shared/job/expand.ts";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { longdoc } from "./helpers/cli.ts";

let stack: LocalStack;
let store: ObjectStore;
let coord: Coordinator;
const model = getModel(loadCatalog(), "qwen3-max");

beforeAll(async () => {
  stack = await startLocalStack();
  store = new ObjectStore(stack.s3, stack.bucket);
  coord = createCoordinator(stack.dynamo.client, stack.dynamo.table);
});
afterAll(async () => {
  await stack?.stop();
});

/** Every task in the queue, taken off it. */
async function drain(): Promise<TaskMessage[]> {
  const out: TaskMessage[] = [];
  for (let empty = 0; empty < 2; ) {
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 300 }));
    const messages = got.Messages ?? [];
    if (messages.length === 0) {
      empty++;
      continue;
    }
    out.push(...messages.map((m) => JSON.parse(m.Body!) as TaskMessage));
    await stack.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: stack.queueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  return out;
}

const docs = (name: string, n: number) => Array.from({ length: n }, (_, i) => ({ source: `d${i}.md`, uri: s3Uri(stack.bucket, `inputs/${name}/d${i}.md`) }));
const spec = (name: string, extra = "") => parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\n${extra}`, `${name}.yaml`);

describe("submit that scales and resumes", () => {
  it("killed part-way (its SQS connection gone after 20 batches) and run again with the same job id: every task exactly once", async () => {
    const jobId = "resume-20261206-000000-abcd";
    let batches = 0;
    // The first invocation dies: after 20 batches every send fails, as for a process that is gone.
    const dying = {
      send: (cmd: unknown) => {
        if (cmd instanceof SendMessageBatchCommand && ++batches > 20) return Promise.reject(new Error("invocation killed"));
        return stack.sqs.send(cmd as SendMessageBatchCommand);
      },
    } as unknown as SQSClient;
    const first = submitJob({ store, sqs: dying, queueUrl: stack.queueUrl, maxReceives: 5, coord, resumable: true, lanes: 8 }, { spec: spec("resume"), model, documents: docs("resume", 1234), outputSchema: null, jobId, trigger: "schedule t" });
    await expect(first).rejects.toThrow("invocation killed");
    // Workers meeting its tasks run them: the job is visible (sending), not `submitting`.
    expect((await coord.readJobEntry(jobId))?.state).toBe("sending");
    const sentBefore = (await coord.sentTaskBatches(jobId, 124)).size;
    expect(sentBefore).toBe(20);

    // The retry lists the documents again and finds one more: it goes on with the job it recorded.
    const again = await submitJob({ store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: 5, coord, resumable: true }, { spec: spec("resume"), model, documents: docs("resume", 1235), outputSchema: null, jobId, trigger: "schedule t" });
    expect(again.items).toHaveLength(1234);
    expect((await coord.readJobEntry(jobId))?.state).toBe("submitted");
    const tasks = await drain();
    const perItem = new Map<string, number>();
    for (const t of tasks) perItem.set(t.itemId, (perItem.get(t.itemId) ?? 0) + 1);
    expect(perItem.size).toBe(1234);
    expect([...perItem.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(again.items.map((i) => i.id))).toEqual(new Set(perItem.keys()));
    expect((await store.getJson<{ items: unknown[] }>(keys.job(jobId)))!.items).toHaveLength(1234);

    // A third run of the same event: the job is queued, nothing is sent twice.
    await submitJob({ store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: 5, coord, resumable: true }, { spec: spec("resume"), model, documents: docs("resume", 1234), outputSchema: null, jobId, trigger: "schedule t" });
    expect(await drain()).toEqual([]);
  });

  it("sends batches in parallel: no more than `lanes` SendMessageBatch calls in flight, and more than one", async () => {
    let inFlight = 0;
    let most = 0;
    const watched = {
      send: async (cmd: unknown) => {
        if (!(cmd instanceof SendMessageBatchCommand)) return stack.sqs.send(cmd as never);
        most = Math.max(most, ++inFlight);
        try {
          return await stack.sqs.send(cmd);
        } finally {
          inFlight--;
        }
      },
    } as unknown as SQSClient;
    const job = await submitJob({ store, sqs: watched, queueUrl: stack.queueUrl, maxReceives: 5, coord, lanes: 6 }, { spec: spec("lanes"), model, documents: docs("lanes", 300), outputSchema: null });
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(6);
    expect((await drain()).length).toBe(job.items.length);
  });

  it("refuses a job whose quota need outlasts the task queue's retention, with the figure, before anything is queued", async () => {
    // 20,000 items of thinking calls at a job cap of 30,000 TPM: each call holds its answer cap and thinking budget at least.
    const big = spec("too-long", "thinking: { enabled: true, budget: 32000 }\nmaxOutputTokens: 8000\nlimits: { tpm: 30000 }\n");
    const need = quotaNeedFloor(big, model, 20_000);
    expect(need).toMatchObject({ calls: 20_000, reservedTokens: 20_000 * 40_000, tpm: 30_000, floor: true });
    expect(need.hours).toBeGreaterThan(deployment.taskRetentionS / 3600);
    const refused = submitJob({ store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: 5, coord }, { spec: big, model, documents: docs("too-long", 20_000), outputSchema: null, jobId: "too-long-20261206-000000-abcd" });
    await expect(refused).rejects.toThrow(/job 'too-long': its calls need 444\.44 hours \(18\.5 days\) of quota at the least .* longer than the task queue keeps a waiting task \(336 hours, 14\.0 days\)/);
    expect(await store.exists(keys.job("too-long-20261206-000000-abcd"))).toBe(false);
    expect(await coord.readJobEntry("too-long-20261206-000000-abcd")).toBeNull();
    expect(await drain()).toEqual([]);
    // A smaller job of the same kind fits.
    expect(quotaNeedFloor(big, model, 1_000).hours).toBeLessThan(deployment.taskRetentionS / 3600);
  });

  it("estimate gives the same figure from the documents' exact tokens, and says when the job does not fit", () => {
    const s = spec("est", "thinking: { enabled: true, budget: 32000 }\nmaxOutputTokens: 8000\nlimits: { tpm: 30000, rpm: 60 }\n");
    const documents = Array.from({ length: 3 }, (_, i) => ({ source: `e${i}.md`, uri: `/tmp/e${i}.md` }));
    const texts = new Map<string, LoadedText>(documents.map((d) => [d.source, { text: "Revenue rose. ".repeat(1000), format: "markdown", error: null }]));
    const e = estimateItems(s, model, expandItems(s, documents), texts);
    const input = e.items.reduce((n, i) => n + i.inputTokens!, 0);
    expect(e.quota).toMatchObject({ calls: 3, reservedTokens: input + 3 * 40_000, rpm: 60, tpm: 30_000, retentionHours: 336, fits: true, floor: false });
    expect(e.quota.hours).toBeCloseTo((input + 3 * 40_000) / 30_000 / 60, 2);
    const many = Array.from({ length: 20_000 }, (_, i) => ({ source: `m${i}.md`, uri: `/tmp/m${i}.md` }));
    const manyTexts = new Map<string, LoadedText>(many.map((d) => [d.source, { text: "Revenue rose.", format: "markdown", error: null }]));
    expect(estimateItems(s, model, expandItems(s, many), manyTexts).quota.fits).toBe(false);
  });

  it("longdoc estimate prints the quota need, and exits 1 naming the retention when the job would be refused", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-quota-need-"));
    try {
      await writeFile(path.join(dir, "a.md"), "# A\n\nRevenue rose.\n");
      await writeFile(path.join(dir, "b.md"), "# B\n\nDebt fell.\n");
      const job = (tpm: number) => `name: need\ndocuments:\n  - path: ./*.md\nprompt: Summarise.\nthinking: { enabled: true, budget: 32000 }\nmaxOutputTokens: 8000\nlimits: { tpm: ${tpm} }\n`;
      await writeFile(path.join(dir, "fits.yaml"), job(5));
      await writeFile(path.join(dir, "too-long.yaml"), job(3));
      const fits = await longdoc(["estimate", path.join(dir, "fits.yaml"), "--json", "--allow-outside"]);
      expect(fits.code).toBe(0);
      const e = JSON.parse(fits.stdout.trim().split("\n").pop()!) as { quota: { calls: number; tpm: number; fits: boolean; retentionHours: number } };
      expect(e.quota).toMatchObject({ calls: 2, tpm: 5, fits: true, retentionHours: 336 });
      const refused = await longdoc(["estimate", path.join(dir, "too-long.yaml"), "--allow-outside"]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toMatch(/quota: 2 call\(s\) reserving \d+ tokens need 44\d\.\d+ hours at 600 RPM and 3 TPM: longer than the task queue keeps a waiting task \(336 hours\); submit refuses this job/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
