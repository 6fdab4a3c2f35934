import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { renderReport } from "../shared/run/report.ts";
import { loadSettings } from "../shared/settings.ts";
import { REPAIR_INSTRUCTION } from "../shared/worker/answer.ts";
import { useLoopback } from "./helpers/loopback.ts";

const para = (i: number) => `## Section ${i}\n\nRevenue in unit ${i % 7} rose ${(i * 3) % 19}% to $${1000 + i * 11} million; margin ${(10 + (i % 5)).toFixed(1)}%.\n`;

async function job(dir: string, name: string, body: string) {
  await mkdir(path.join(dir, "docs"), { recursive: true });
  await writeFile(path.join(dir, "docs", "report.md"), Array.from({ length: 60 }, (_, i) => para(i)).join("\n"));
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `name: ${name}\ndocuments:\n  - path: docs/report.md\n${body}`);
  return file;
}

const SCHEMA = JSON.stringify({
  type: "object",
  required: ["summary", "revenueMillions"],
  properties: { summary: { type: "string" }, revenueMillions: { type: "number" } },
});

describe("model calls: truncation, JSON repair, reasoning files", () => {
  // every possible implicit hit hits, so the repair call's cache read is certain
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 }, sim: { implicitCacheHitRate: 1 } });
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-calls-"));
  });
  const run = (jobFile: string) =>
    runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, fresh: true });
  const result = async (outDir: string, id: string) => JSON.parse(await readFile(path.join(outDir, "items", id, "result.json"), "utf8")) as ItemResult;

  it("an answer cut at the output cap fails output_truncated, the partial answer kept", async () => {
    const file = await job(dir, "cut-fail", "questions:\n  - id: margin\n    ask: What happened to margin?\nmaxOutputTokens: 20\n");
    const r = await run(file);
    const item = r.manifest.items[0]!;
    expect(item.status).toBe("failed");
    expect(item.error?.kind).toBe("output_truncated");
    expect(item.error?.message).toContain('hit the output cap (max 20 tokens, finish_reason "length")');
    expect(item.finishReasons).toEqual(["length"]);
    expect(r.manifest.truncatedItems).toBe(1);
    const res = await result(r.outDir, item.id);
    expect(res).toMatchObject({ status: "failed", finishReason: "length", finishReasons: ["length"], answer: `items/${item.id}/answer.md` });
    expect(res.usage.outputTokens).toBe(20);
    const partial = await readFile(path.join(r.outDir, "items", item.id, "answer.md"), "utf8");
    expect(partial.startsWith("longdoc-sim:")).toBe(true);
    expect(renderReport(r.manifest)).toContain("1 item(s) hit the output cap");
  });

  it("with output.onTruncated: keep, the cut answer succeeds marked answerTruncated", async () => {
    const file = await job(dir, "cut-keep", "questions:\n  - id: margin\n    ask: What happened to margin?\nmaxOutputTokens: 20\noutput: { format: text, onTruncated: keep }\n");
    const r = await run(file);
    const item = r.manifest.items[0]!;
    expect(r.manifest.status).toBe("succeeded");
    expect(item).toMatchObject({ status: "succeeded", error: null, answerTruncated: true, truncated: true, finishReasons: ["length"] });
    expect(r.manifest.truncatedItems).toBe(1);
    expect(await result(r.outDir, item.id)).toMatchObject({ answerTruncated: true, finishReason: "length" });
  });

  it("a per-question job without thinking writes no reasoning.md, and records every call's finish reason", async () => {
    const file = await job(dir, "no-thinking", "questions:\n  - id: margin\n    ask: What happened to margin?\n  - id: revenue\n    ask: And revenue?\ncalls: per-question\n");
    const r = await run(file);
    const item = r.manifest.items[0]!;
    expect(item).toMatchObject({ status: "succeeded", reasoning: null, finishReasons: ["stop", "stop"], finishReason: "stop" });
    expect(r.manifest.truncatedItems).toBe(0);
    expect(existsSync(path.join(r.outDir, "items", item.id, "reasoning.md"))).toBe(false);
    expect((await result(r.outDir, item.id)).reasoning).toBeNull();
    expect(existsSync(path.join(r.outDir, "items", item.id, "answer.md"))).toBe(true);
  });

  it("a JSON answer that fails its schema is repaired by one call over the same cached prefix", async () => {
    const file = await job(dir, "json-repair", `prompt: Summarise the report as JSON.\noutput:\n  format: json\n  schema: ${SCHEMA}\n`);
    const before = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "schema", count: 1 });
    const r = await run(file);
    const item = r.manifest.items[0]!;
    expect(item).toMatchObject({ status: "succeeded", repaired: true, answer: `items/${item.id}/answer.json`, finishReasons: ["stop", "stop"] });
    const calls = loop.sim.calls.slice(before);
    expect(calls).toHaveLength(2);
    expect(calls[0]!.fault).toBe("schema");
    expect(calls[1]!.question.startsWith(REPAIR_INSTRUCTION)).toBe(true);
    expect(calls[1]!.question).toContain("must have required property 'summary'");
    // the repair call reads the first call's prefix from the cache
    expect(calls[1]!.cachedTokens).toBeGreaterThan(calls[0]!.promptTokens * 0.9);
    const answer = JSON.parse(await readFile(path.join(r.outDir, "items", item.id, "answer.json"), "utf8"));
    expect(answer).toMatchObject({ summary: expect.any(String), revenueMillions: expect.any(Number) });
    const res = await result(r.outDir, item.id);
    expect(res).toMatchObject({ repaired: true, status: "succeeded" });
    expect(res.usage.inputTokens).toBe(calls[0]!.promptTokens + calls[1]!.promptTokens);
    expect(existsSync(path.join(r.outDir, "items", item.id, "answer.invalid.json"))).toBe(false);
  });

  it("a repair that still fails the schema ends output_invalid with the errors, answer.json never written", async () => {
    const file = await job(dir, "json-unrepaired", `prompt: Summarise the report as JSON.\noutput:\n  format: json\n  schema: ${SCHEMA}\n`);
    const before = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "schema", count: 2 });
    const r = await run(file);
    const item = r.manifest.items[0]!;
    expect(loop.sim.calls.length - before).toBe(2);
    expect(item.status).toBe("failed");
    expect(item.error?.kind).toBe("output_invalid");
    expect(item.error?.message).toContain("must have required property 'summary'");
    expect(item.error?.message).toContain("the repair call's answer still fails");
    expect(item).toMatchObject({ answer: null, invalidAnswer: `items/${item.id}/answer.invalid.json`, finishReasons: ["stop", "stop"] });
    expect(existsSync(path.join(r.outDir, "items", item.id, "answer.json"))).toBe(false);
    expect(JSON.parse(await readFile(path.join(r.outDir, "items", item.id, "answer.invalid.json"), "utf8"))).toHaveProperty("longdoc_sim_violation");
  });
});
