import { createHash } from "node:crypto";
import { mkdtemp, readFile, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { sendTasks, type TaskMessage } from "../shared/run/queue.ts";
import { silentLog } from "../shared/log.ts";
import { queueDepth } from "../shared/local/inspect.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import { parseSimProof } from "../shared/sim/index.ts";
import { countTokens } from "../shared/tokens/index.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loadSettings } from "../shared/settings.ts";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** Three Markdown documents of very different sizes, the largest over 100,000 tokens. */
async function makeJob(dir: string, opts: { docs?: number; name?: string } = {}) {
  const docsDir = path.join(dir, "docs");
  await mkdir(docsDir, { recursive: true });
  const para = (i: number) =>
    `## Note ${i}\n\nRevenue in segment ${i % 17} rose ${(i * 7) % 23}.${i % 10}% to $${(1000 + i * 13).toLocaleString("en-US")} million; ` +
    `operating margin was ${(10 + (i % 9)).toFixed(1)}% (prior year ${(9 + (i % 7)).toFixed(1)}%). Risk ${i}: supplier concentration in region ${i % 5}.\n`;
  const texts = [
    "# Small memo\n\nCash rose to $12.4 million.\n",
    Array.from({ length: 300 }, (_, i) => para(i)).join("\n"),
    Array.from({ length: 2600 }, (_, i) => para(i + 1000)).join("\n"),
  ].slice(0, opts.docs ?? 3);
  const files = texts.map((_, i) => path.join(docsDir, `doc-${i + 1}.md`));
  await Promise.all(texts.map((t, i) => writeFile(files[i]!, t)));
  const jobFile = path.join(dir, "job.yaml");
  await writeFile(
    jobFile,
    `name: ${opts.name ?? "pipeline-test"}\ndocuments:\n  - path: docs/*.md\nsystem: You are an analyst.\nquestions:\n  - id: margin\n    ask: What happened to operating margin?\n` +
      `thinking: { enabled: true, budget: 2048 }\nmaxOutputTokens: 1024\n`,
  );
  return { jobFile, texts };
}

describe("a job end to end: emulator, poller, worker, simulator", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  const env = () => loop.env();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-pipeline-"));
  });

  it("runs three documents whole and writes every item, the manifest and the proof", async () => {
    const { jobFile, texts } = await makeJob(path.join(dir, "three"));
    expect(countTokens(texts[2]!)).toBeGreaterThan(100_000);
    const callsBefore = loop.sim.calls.length;
    const run = await runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 3, settings: loadSettings(env()), log: silentLog, stack: loop.stack });

    const m = run.manifest;
    expect(m.status).toBe("succeeded");
    expect(m.counts).toEqual({ total: 3, succeeded: 3, failed: 0, skipped: 0 });
    expect(m.items.map((i) => i.id)).toEqual(["001-doc-1", "002-doc-2", "003-doc-3"]);
    expect(loop.sim.calls.length - callsBefore).toBe(3);

    const onDisk = JSON.parse(await readFile(path.join(run.outDir, "manifest.json"), "utf8")) as Manifest;
    expect(onDisk).toEqual(m);
    for (const [i, item] of m.items.entries()) {
      expect(item).toMatchObject({ status: "succeeded", attempts: 1, error: null, answer: `items/${item.id}/answer.md`, reasoning: `items/${item.id}/reasoning.md` });
      const answer = await readFile(path.join(run.outDir, item.answer!), "utf8");
      const reasoning = await readFile(path.join(run.outDir, item.reasoning!), "utf8");
      expect(answer.length).toBeGreaterThan(0);
      expect(reasoning.length).toBeGreaterThan(0);
      // The simulator's proof: it received this document's exact text, token for token.
      expect(parseSimProof(answer)).toEqual([
        expect.objectContaining({ index: 1, source: expect.stringMatching(new RegExp(`doc-${i + 1}\\.md$`)), tokens: countTokens(texts[i]!), sha256: sha256(texts[i]!) }),
      ]);
      const result = JSON.parse(await readFile(path.join(run.outDir, "items", item.id, "result.json"), "utf8")) as ItemResult;
      expect(result.documents[0]).toMatchObject({ format: "markdown", tokens: countTokens(texts[i]!), sha256: sha256(texts[i]!) });
      expect(result.usage).toEqual(item.usage);
      expect(item.usage.inputTokens).toBeGreaterThan(countTokens(texts[i]!));
      expect(item.usage.reasoningTokens).toBeGreaterThan(0);
      expect(item.usage.outputTokens).toBeGreaterThan(item.usage.reasoningTokens);
      expect(item.costUsd).toBeGreaterThan(0);
    }
    expect(m.usage.inputTokens).toBe(m.items.reduce((s, i) => s + i.usage.inputTokens, 0));
    // The readable report beside the manifest links every item's answer and reasoning.
    const report = await readFile(path.join(run.outDir, "report.html"), "utf8");
    expect(report).toContain("<strong>succeeded</strong>");
    for (const item of m.items) {
      expect(report).toContain(`<a href="${item.answer}">answer</a> <a href="${item.reasoning}">reasoning</a>`);
    }
    expect(m.costUsd).toBeCloseTo(m.items.reduce((s, i) => s + i.cost, 0), 6);
  });

  it("a message delivered twice gives one result and one model call", async () => {
    const { jobFile } = await makeJob(path.join(dir, "dup"), { docs: 1, name: "dup-test" });
    const callsBefore = loop.sim.calls.length;
    const run = await runLocalJob({
      jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(env()), log: silentLog, stack: loop.stack,
      onSubmitted: async (job) => {
        const again: TaskMessage = { v: 1, jobId: job.jobId, itemId: job.items[0]!.id, bucket: loop.stack.bucket, documents: job.items[0]!.documents.map((d) => d.uri) };
        await sendTasks(loop.stack.sqs, loop.stack.queueUrl, [again]);
        expect(await queueDepth(loop.stack)).toBe(2);
      },
    });
    // Both copies were consumed: the run drains the queue before it stops.
    expect(await queueDepth(loop.stack)).toBe(0);
    expect(run.manifest.counts).toMatchObject({ total: 1, succeeded: 1 });
    expect(run.manifest.items[0]!.attempts).toBe(1);
    expect(loop.sim.calls.length - callsBefore).toBe(1);
  });

  it("a model call that fails mid-task comes back and succeeds on the next delivery", async () => {
    const { jobFile } = await makeJob(path.join(dir, "retry"), { docs: 1, name: "retry-test" });
    const callsBefore = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "drop", count: 1 });
    const run = await runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(env()), log: silentLog, stack: loop.stack, timing: { backoffBaseMs: 10, backoffCapMs: 10 } });
    expect(run.manifest.status).toBe("succeeded");
    expect(run.manifest.items[0]).toMatchObject({ status: "succeeded", attempts: 2, error: null });
    expect(loop.sim.calls.length - callsBefore).toBe(2);
    const attempt = JSON.parse(await readFile(path.join(run.outDir, "items", run.manifest.items[0]!.id, "attempts", "1.json"), "utf8"));
    expect(attempt).toMatchObject({ status: "failed", error: { kind: "model_unavailable" } });
  });
});
