// What report.html inlines from a run: answers, traces and batch questions, read from S3 (the
// emulator) within bounds, so a report of a big run stays a file a browser opens.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRecord } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { renderReport } from "../shared/run/report.ts";
import { readReportContent } from "../shared/run/report-content.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { batchJobSpec } from "../shared/job/batch.ts";

describe("report content", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startLocalStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("inlines the first items' answers and traces, cut at the limits with links to the whole files, and counts the rest", async () => {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const jobId = "batchy-20261126-000000-abcd";
    const ids = ["r1", "r2", "r3"];
    const job = {
      version: 1, jobId, name: "batchy", model: "qwen3-max", submittedAt: "2026-11-26T00:00:00.000Z",
      spec: batchJobSpec("batchy.jsonl", "qwen3-max", true), outputSchema: null,
      limits: { concurrency: 1, rpm: 1, tpm: 1, maxCostUsd: null, maxCost: null, maxDocumentBytes: 1 }, currency: "USD", region: "ap-southeast-1", maxReceives: 1, maxAttempts: 1,
      items: ids.map((id) => ({ id, documents: [], request: `s3://${stack.bucket}/${keys.request(jobId, id)}` })),
      batch: { file: "batchy.jsonl", requests: 3 },
    } satisfies JobRecord;
    for (const id of ids) {
      await store.putJson(keys.request(jobId, id), { customId: id, line: 1, model: "qwen3-max", messages: [{ role: "system", content: "s" }, { role: "user", content: `question of ${id}` }] });
      await store.put(keys.item(jobId, id, "answer.md"), `# Answer ${id}\n\n${"a".repeat(40)}`, "text/markdown");
      await store.put(keys.item(jobId, id, "reasoning.md"), "r".repeat(30), "text/markdown");
    }
    const usage = { inputTokens: 1, outputTokens: 1, reasoningTokens: 0, cachedTokens: 0 };
    const manifest: Manifest = {
      version: 1, jobId, job: "batchy", model: "qwen3-max", status: "succeeded", counts: { total: 3, succeeded: 3, failed: 0, skipped: 0 },
      usage, currency: "USD", cost: 0, cacheSavings: 0, costUsd: 0, cacheSavingsUsd: 0, startedAt: job.submittedAt, finishedAt: job.submittedAt,
      items: ids.map((id) => ({ id, documents: [], status: "succeeded", attempts: 1, error: null, usage, cost: 0, cacheSavings: 0, costUsd: 0, cacheSavingsUsd: 0, answer: `items/${id}/answer.md`, reasoning: `items/${id}/reasoning.md` })),
    };
    const content = await readReportContent(store, job, manifest, { maxInlineItems: 2, maxAnswerChars: 20, maxReasoningChars: 10, maxQuestionChars: 8 });
    expect(content.asked).toBeNull();
    expect(content.notInlined).toBe(1);
    expect([...content.items.keys()]).toEqual(["r1", "r2"]);
    expect(content.items.get("r1")).toEqual({ question: "question", answer: "# Answer r1\n\naaaaaaa", answerCut: true, reasoning: "r".repeat(10), reasoningCut: true });

    const html = renderReport(manifest, content);
    expect(html).toContain('The answer is cut here; <a href="items/r1/answer.md">the whole answer</a>.');
    expect(html).toContain('<a href="items/r1/reasoning.md">(cut; the whole trace)</a>');
    expect(html).toContain("1 more item(s) are listed in the table above");
    expect(html).not.toContain('id="item-r3"');
    expect(html).toContain('<p class="q">question</p>');
  });
});
