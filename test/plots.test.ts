// The run's plots: series computed from a known run, drawn as SVG with one point per finished
// item (or minute), and written into report.html by the job's finish.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRecord } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { finalizeJob } from "../shared/run/finalize.ts";
import { writeFinalManifest } from "../shared/run/finish.ts";
import { silentLog } from "../shared/log.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { bin, durations, finishedOverTime, inputSizes, quotaOverTime, renderHistogram, renderLinePlot, spendOverTime } from "../shared/run/plots.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";

const T0 = Date.parse("2026-12-01T10:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

function job(n: number, o: { maxCost?: number | null; jobId?: string } = {}): JobRecord {
  return {
    version: 1,
    jobId: o.jobId ?? "plots-20261201-100000-abcd",
    name: "plots <b>",
    model: "qwen3-max",
    submittedAt: iso(T0),
    spec: { output: { format: "text" }, prompt: "Summarise." } as unknown as JobRecord["spec"],
    outputSchema: null,
    limits: { concurrency: 2, rpm: 60, tpm: 100_000, maxCostUsd: o.maxCost ?? null, maxCost: o.maxCost ?? null, maxDocumentBytes: 1 << 20 },
    currency: "USD",
    region: "ap-southeast-1",
    maxReceives: 3,
    maxAttempts: 3,
    items: Array.from({ length: n }, (_, i) => ({ id: `item-${i + 1}`, documents: [{ source: `d${i + 1}.md`, uri: `s3://b/d${i + 1}.md` }] })),
  };
}

/** Item k (1-based) finishes k minutes after submission, took k × 10 s, read k × 1000 tokens and cost k × 0.01. */
function result(k: number, status: ItemResult["status"] = "succeeded"): ItemResult {
  return {
    version: 1,
    id: `item-${k}`,
    status,
    attempts: 1,
    documents: [{ source: `d${k}.md`, tokens: k * 1000 }],
    error: status === "succeeded" ? null : { kind: "model_error", message: "boom" },
    usage: { inputTokens: k * 1000 + 50, outputTokens: 100, reasoningTokens: 0, cachedTokens: 0 },
    cost: k * 0.01,
    currency: "USD",
    costUsd: k * 0.01,
    tier: null,
    model: "qwen3-max",
    finishReason: "stop",
    requestId: null,
    answer: null,
    reasoning: null,
    startedAt: iso(T0 + k * 60_000 - k * 10_000),
    finishedAt: iso(T0 + k * 60_000),
    durationMs: k * 10_000,
  };
}

describe("series from a known run", () => {
  // Results out of order: the series go by finish time.
  const results = [result(3), result(1), result(2, "failed"), result(4)];

  it("items finished and spend over time: one point per finished item, in minutes since submission, against the cost cap", () => {
    expect(finishedOverTime(job(5), results).points).toEqual([
      { x: 1, y: 1 },
      { x: 2, y: 2 },
      { x: 3, y: 3 },
      { x: 4, y: 4 },
    ]);
    const spend = spendOverTime(job(5, { maxCost: 0.5 }), results);
    expect(spend.points.map((p) => [p.x, Math.round(p.y * 100) / 100])).toEqual([
      [1, 0.01],
      [2, 0.03],
      [3, 0.06],
      [4, 0.1],
    ]);
    expect(spend.limit).toEqual({ y: 0.5, label: "cost cap 0.5" });
    expect(spendOverTime(job(5), results).limit).toBeUndefined();
  });

  it("input sizes from the documents' counted tokens, durations in seconds, in equal bins", () => {
    // Four values: two bins (√n, at most 10).
    expect(inputSizes(results).bins.map((b) => b.count)).toEqual([2, 2]);
    expect(inputSizes(results).bins[0]).toMatchObject({ from: 1000 });
    expect(durations(results).bins.map((b) => [b.from, b.to, b.count])).toEqual([
      [10, 25, 2],
      [25, 40, 2],
    ]);
    expect(bin([])).toEqual([]);
    expect(bin([5, 5, 5])).toEqual([{ from: 5, to: 5, count: 3 }]);
    expect(bin(Array.from({ length: 1000 }, (_, i) => i)).length).toBe(10);
  });

  it("quota used per minute from the calls, every minute from the first call to the last, against the job's RPM and TPM", () => {
    const calls = [
      { at: T0 + 5_000, tokens: 1000 },
      { at: T0 + 50_000, tokens: 2000 },
      { at: T0 + 3 * 60_000 + 1, tokens: 500 },
    ];
    const q = quotaOverTime(job(3), calls);
    expect(q.rpm.points).toEqual([
      { x: 0, y: 2 },
      { x: 1, y: 0 },
      { x: 2, y: 0 },
      { x: 3, y: 1 },
    ]);
    expect(q.tpm.points.map((p) => p.y)).toEqual([3000, 0, 0, 500]);
    expect(q.rpm.limit).toEqual({ y: 60, label: "RPM 60" });
    expect(q.tpm.limit).toEqual({ y: 100_000, label: "TPM 100000" });
    expect(quotaOverTime(job(3), []).rpm.points).toEqual([]);
  });
});

describe("SVG", () => {
  it("draws a line with one vertex and one dot per point, the limit as a dashed line, labels escaped", () => {
    const plot = { ...spendOverTime(job(5, { maxCost: 0.5 }), [result(1), result(2)]), title: "<script>x</script>" };
    const svg = renderLinePlot(plot);
    expect(svg).toContain('data-points="2"');
    expect(/ points="([^"]+)"/.exec(svg)![1]!.split(" ")).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(svg).toContain('class="limit"');
    expect(svg).toContain("&lt;script&gt;x&lt;/script&gt;");
    expect(svg).not.toContain("<script>");
    expect(renderLinePlot(finishedOverTime(job(1), []))).toContain("no data yet");
  });

  it("draws one bar per bin, its height by its count", () => {
    const svg = renderHistogram(durations([result(1), result(2), result(3), result(3)]));
    expect(svg.match(/class="bar"/g)).toHaveLength(2);
    expect([...svg.matchAll(/data-count="(\d+)"/g)].map((m) => Number(m[1]))).toEqual([1, 3]);
  });
});

describe("report.html", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startLocalStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it.for(["the finalizer (a worker's last item)", "a local run's finish"])("carries the plots inline, with one point per finished item and the quota used per minute, written by %s", async (writer) => {
    const store = new ObjectStore(stack.s3, stack.bucket);
    const j = job(3, { maxCost: 1, jobId: writer.startsWith("the finalizer") ? "plots-20261201-100000-fin0" : "plots-20261201-100000-loc0" });
    await store.putJson(keys.job(j.jobId), j);
    for (const k of [1, 2, 3]) await store.putJson(keys.item(j.jobId, `item-${k}`, "result.json"), result(k, k === 2 ? "failed" : "succeeded"));
    if (writer.startsWith("the finalizer")) await finalizeJob({ s3: stack.s3, log: silentLog }, { jobId: j.jobId, bucket: stack.bucket });
    else await writeFinalManifest(store, j);
    const html = new TextDecoder().decode(await store.getBytes(keys.report(j.jobId)));
    expect([...html.matchAll(/<svg [^>]*data-plot="([^"]+)"/g)].map((m) => m[1])).toEqual(["finished", "spend", "input-sizes", "durations", "quota-rpm", "quota-tpm"]);
    // Points per plot: one per finished item over time; one per minute of the quota used, from the
    // first item's start to the last's (the results carry when each started).
    const points = Object.fromEntries(html.split("<svg ").slice(1).map((svg) => [/data-plot="([^"]+)"/.exec(svg)?.[1], /data-points="(\d+)"/.exec(svg)?.[1]]));
    const minutes = (await Promise.all([1, 2, 3].map(async (k) => (await store.getJson<ItemResult>(keys.item(j.jobId, `item-${k}`, "result.json")))!)))
      .filter((r) => r.usage.inputTokens + r.usage.outputTokens > 0)
      .map((r) => Math.floor((Date.parse(r.startedAt) - Date.parse(j.submittedAt)) / 60_000));
    const span = String(Math.max(...minutes) - Math.min(...minutes) + 1);
    expect(points).toMatchObject({ finished: "3", spend: "3", "quota-rpm": span, "quota-tpm": span });
    // Still one inert file: no script, nothing loaded from elsewhere.
    expect(html).not.toMatch(/<script|src=|href="http/);
  });
});
