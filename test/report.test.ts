import { describe, expect, it } from "vitest";
import type { Manifest } from "../shared/run/manifest.ts";
import { renderReport } from "../shared/run/report.ts";

describe("report.html", () => {
  it("escapes what documents and errors say, and marks failed items", () => {
    const usage = { inputTokens: 1200, outputTokens: 30, reasoningTokens: 10, cachedTokens: 0 };
    const m: Manifest = {
      version: 1, jobId: "j-1", job: "risks", model: "qwen3-max", status: "partial",
      counts: { total: 2, succeeded: 1, failed: 1, skipped: 0 }, usage, currency: "USD", cost: 0.01, costUsd: 0.01, cacheSavings: 0, cacheSavingsUsd: 0,
      startedAt: "2026-11-23T00:00:00.000Z", finishedAt: "2026-11-23T00:01:00.000Z",
      items: [
        { id: "001-a", documents: ["docs/<script>alert(1)</script>.md"], status: "succeeded", attempts: 1, error: null, usage, cost: 0.01, costUsd: 0.01, cacheSavings: 0, cacheSavingsUsd: 0, answer: "items/001-a/answer.md", reasoning: "items/001-a/reasoning.md" },
        { id: "002-b", documents: ["docs/b.pdf"], status: "failed", attempts: 3, error: { kind: "document_encrypted", message: 'b.pdf: needs a "password" & more' }, usage: { ...usage, inputTokens: 0 }, cost: 0, costUsd: 0, cacheSavings: 0, cacheSavingsUsd: 0, answer: null, reasoning: null },
      ],
    };
    const html = renderReport(m);
    expect(html).not.toContain("<script>");
    expect(html).toContain("docs/&lt;script&gt;alert(1)&lt;/script&gt;.md");
    expect(html).toContain('<tr class="failed"><td>002-b</td>');
    expect(html).toContain("document_encrypted: b.pdf: needs a &quot;password&quot; &amp; more");
    expect(html).toContain("1 succeeded, 1 failed, 0 skipped of 2");
  });
});
