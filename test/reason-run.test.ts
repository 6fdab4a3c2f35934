// End to end on this machine: samples with consensus and the code tool, through the real local
// fleet (emulator, worker processes) against the simulator on loopback.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ChatRequest, ModelClient } from "../shared/model/client.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { loadSettings } from "../shared/settings.ts";
import { useLoopback } from "./helpers/loopback.ts";

const REPORT = [
  "# Northwind Components — FY2025 results",
  "",
  "| line | FY2025 | FY2024 |",
  "|---|---:|---:|",
  "| Revenue | 48,250 | 45,100 |",
  "| Operating income | 6,120 | 5,480 |",
  "| Current assets | 14,900 | 13,200 |",
  "| Current liabilities | 9,800 | 9,950 |",
  "",
  ...Array.from({ length: 120 }, (_, i) => `Note ${i + 1}: the segment discussion continues with volumes, prices and mix by region, and the outlook for the year.`),
].join("\n");

const SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["company", "currentRatio", "revenueGrowthPct", "operatingMargin"],
  properties: {
    company: { type: "string" },
    currentRatio: { type: "number" },
    revenueGrowthPct: { type: "number" },
    operatingMargin: { type: "number" },
  },
};

async function jobDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "longdoc-reason-run-"));
  await writeFile(path.join(dir, "northwind.md"), REPORT);
  await writeFile(path.join(dir, "ratios.json"), JSON.stringify(SCHEMA));
  return dir;
}

const readJson = async <T>(file: string) => JSON.parse(await readFile(file, "utf8")) as T;

describe("samples, consensus and the code tool, end to end", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  let out: string;
  beforeAll(async () => {
    dir = await jobDir();
    out = await mkdtemp(path.join(tmpdir(), "longdoc-reason-out-"));
  });

  const job = (extra: string) =>
    `name: ratios\ndocuments:\n  - path: northwind.md\nprompt: Compute the current ratio, revenue growth and operating margin with the code tool, as JSON.\n` +
    `output: { format: json, schemaFile: ratios.json }\ncache: explicit\nsamples: 3\ntools: [code]\nmaxOutputTokens: 2048\n${extra}`;

  it("runs 3 samples, each calling the code tool, and writes the consensus with agreement per field and every tool call in order", async () => {
    const file = path.join(dir, "ratios.yaml");
    await writeFile(file, job("numericTolerance: { relative: 0.001 }\n"));
    const before = loop.sim.calls.length;
    const run = await runLocalJob({ inProcess: true, jobFile: file, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, workers: 1 });
    expect(run.manifest.status).toBe("succeeded");
    const item = run.manifest.items[0]!;
    // The simulator's third seed reads the figures one place later: two samples agree, one does not.
    expect(item).toMatchObject({ status: "succeeded", samples: 3, toolCalls: 3 });
    expect(item.agreement).toBeGreaterThan(0.3);
    expect(item.agreement).toBeLessThan(1);

    // Six requests: per sample, a tool call round and an answer round; seeds 1..3; the code tool offered.
    const calls = loop.sim.calls.slice(before);
    expect(calls).toHaveLength(6);
    expect(calls.map((c) => c.seed).sort()).toEqual([1, 1, 2, 2, 3, 3]);
    expect(calls.every((c) => c.tools.length === 1 && c.tools[0] === "run_javascript")).toBe(true);
    expect(calls.filter((c) => c.finishReason === "tool_calls")).toHaveLength(3);
    expect(calls.filter((c) => c.toolResults === 1).every((c) => c.finishReason === "stop" && c.toolChoice === "auto")).toBe(true);
    // k samples billed with cache reads: every call after the first read the explicit cache block.
    expect(calls[0]!.cacheCreationTokens).toBeGreaterThan(1024);
    expect(calls.slice(1).every((c) => c.cachedTokens >= calls[0]!.cacheCreationTokens)).toBe(true);
    expect(item.usage.cachedTokens).toBe(calls.reduce((s, c) => s + c.cachedTokens, 0));
    expect(item.usage.inputTokens).toBe(calls.reduce((s, c) => s + c.promptTokens, 0));

    const result = await readJson<ItemResult>(path.join(run.outDir, "items", item.id, "result.json"));
    expect(result).toMatchObject({ samples: 3, toolCalls: 3, trace: `items/${item.id}/trace.json` });
    const detail = result.agreementDetail![0]!;
    const field = (p: string) => detail.fields!.find((f) => f.path === p)!.agreement;
    expect(field("currentRatio")).toBeCloseTo(2 / 3, 4);
    expect(detail.disagreements.map((d) => d.path)).toContain("currentRatio");
    expect(detail.disagreements.find((d) => d.path === "currentRatio")!.groups.map((g) => g.samples)).toEqual([[1, 2], [3]]);
    expect(item.agreementByField).toEqual(detail.fields);

    // The consensus answer is the majority's: the numbers the tool computed for samples 1 and 2.
    const answer = await readJson<Record<string, number>>(path.join(run.outDir, "items", item.id, "answer.json"));
    const s1 = await readJson<Record<string, number>>(path.join(run.outDir, "items", item.id, "samples", "1.json"));
    const s3 = await readJson<Record<string, number>>(path.join(run.outDir, "items", item.id, "samples", "3.json"));
    expect(answer.currentRatio).toBe(s1.currentRatio);
    expect(s3.currentRatio).not.toBe(s1.currentRatio);

    // The trace: per sample, the tool call's code (from the document's figures) and the sandbox's real output, in order.
    const trace = await readJson<{ calls: { samples: { sample: number; rounds: { round: number; tools: { code: string; output: string; ok: boolean }[] }[] }[] }[] }>(
      path.join(run.outDir, "items", item.id, "trace.json"),
    );
    const samples = trace.calls[0]!.samples;
    expect(samples.map((s) => s.sample)).toEqual([1, 2, 3]);
    for (const s of samples) {
      expect(s.rounds.map((r) => r.round)).toEqual([1, 2]);
      const [tool] = s.rounds[0]!.tools;
      expect(tool!.ok).toBe(true);
      expect(tool!.code).toContain("const figures = [");
      expect(tool!.output).toMatch(/^stdout:\nfigures: [\d., ]+\nvalue: \{"ratio":[\d.]+,"growthPct":-?[\d.]+,"sum":[\d.]+\}$/);
    }
    expect(samples[0]!.rounds[0]!.tools[0]!.code).toContain("[48250, 45100, 6120, 5480]");
    expect(samples[0]!.rounds[0]!.tools[0]!.output).toContain(`"ratio":${Math.round((48250 / 45100) * 10000) / 10000}`);
    // reasoning.md holds each sample with its tool call, code then output.
    const md = await readFile(path.join(run.outDir, "items", item.id, "reasoning.md"), "utf8");
    expect(md.indexOf("# Sample 1")).toBeLessThan(md.indexOf("# Sample 2"));
    expect(md.match(/### Tool call: run_javascript\n\n```js\n/g)).toHaveLength(3);

    // Every round of every sample is a call of the one attempt, traced under its own label, its
    // text in its own section (samples 2 and 3 stream together), and priced in the attempt's cost.
    const attempt = await readJson<AttemptRecord>(path.join(run.outDir, "items", item.id, "attempts", "1.json"));
    expect(attempt.calls.map((c) => c.label).sort()).toEqual([1, 2, 3].flatMap((n) => [`sample ${n} round 1`, `sample ${n} round 2`]));
    expect(attempt.calls.map((c) => c.requestId).sort()).toEqual(calls.map((c) => c.id).sort());
    expect(attempt).toMatchObject({ status: "succeeded", inFlightCalls: [] });
    expect(attempt.cost).toBeCloseTo(item.cost, 5); // (the manifest rounds to the millionth)
    expect(attempt.usage).toEqual(item.usage);

    // The manifest and report show the agreement.
    const report = await readFile(path.join(run.outDir, "report.html"), "utf8");
    expect(report).toContain("<th>agreement</th>");
    expect(report).toContain(`${Math.round(item.agreement! * 100)}% of 3 · 3 tool calls`);
  }, 90_000);

  it("fails an item below minAgreement with kind low_agreement, every sample kept", async () => {
    const file = path.join(dir, "strict.yaml");
    await writeFile(file, job("minAgreement: 0.95\n").replace("name: ratios", "name: strict"));
    const run = await runLocalJob({ inProcess: true, jobFile: file, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, workers: 1 });
    expect(run.manifest.status).toBe("failed");
    const item = run.manifest.items[0]!;
    expect(item.status).toBe("failed");
    expect(item.error).toEqual({ kind: "low_agreement", message: expect.stringMatching(/^the 3 samples agree \d+%, below minAgreement 0\.95; every sample is kept under samples\//) });
    for (const n of [1, 2, 3]) expect(await readJson(path.join(run.outDir, "items", item.id, "samples", `${n}.json`))).toHaveProperty("currentRatio");
  }, 90_000);

  it("gives each question its own depth over one cached prefix, and offers the tool with tool_choice auto in thinking mode", async () => {
    const file = path.join(dir, "depth.yaml");
    await writeFile(
      file,
      `name: depth\ndocuments:\n  - path: northwind.md\ncalls: per-question\ncache: explicit\ntools: [code]\nthinking: { enabled: false }\nmaxOutputTokens: 1024\n` +
        `questions:\n  - id: lookup\n    ask: What was FY2025 revenue?\n  - id: analysis\n    ask: Analyse the margin trend with exact arithmetic.\n    thinking: { enabled: true, budget: 3000 }\n`,
    );
    const before = loop.sim.calls.length;
    const run = await runLocalJob({ inProcess: true, jobFile: file, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, workers: 1 });
    expect(run.manifest.status).toBe("succeeded");
    const calls = loop.sim.calls.slice(before);
    const lookup = calls.filter((c) => c.question.includes("FY2025 revenue"));
    const analysis = calls.filter((c) => c.question.includes("margin trend"));
    expect(lookup.length).toBeGreaterThan(0);
    expect(lookup.every((c) => !c.thinking && c.thinkingBudget === null)).toBe(true);
    expect(analysis.every((c) => c.thinking && c.thinkingBudget !== null && c.thinkingBudget <= 3000)).toBe(true);
    expect(analysis[0]!.toolChoice).toBe("auto");
    expect(analysis[0]!.toolCall?.name).toBe("run_javascript");
    // The second question's calls read the prefix the first question wrote.
    expect(analysis.every((c) => c.cachedTokens > 1024)).toBe(true);
    const md = await readFile(path.join(run.outDir, "items", run.manifest.items[0]!.id, "reasoning.md"), "utf8");
    expect(md).toContain("I will compute the figures exactly with the run_javascript tool.");
  }, 90_000);

  it("text samples: all kept, the majority measured, and a judging call over the cached prefix picks one and says why", async () => {
    const file = path.join(dir, "judged.yaml");
    await writeFile(file, `name: judged\ndocuments:\n  - path: northwind.md\nprompt: Summarise the year.\ncache: explicit\nsamples: 3\njudge: true\n`);
    const before = loop.sim.calls.length;
    const run = await runLocalJob({ inProcess: true, jobFile: file, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, workers: 1 });
    expect(run.manifest.status).toBe("succeeded");
    const item = run.manifest.items[0]!;
    expect(item).toMatchObject({ samples: 3, agreement: 0.6667, toolCalls: 0 });
    const calls = loop.sim.calls.slice(before);
    expect(calls).toHaveLength(4);
    const judgeCall = calls[3]!;
    expect(judgeCall.question).toContain("Several answers to the request above were sampled independently.");
    expect(judgeCall.cachedTokens).toBeGreaterThan(1024);
    const result = await readJson<ItemResult>(path.join(run.outDir, "items", item.id, "result.json"));
    expect(result.agreementDetail![0]!.judge).toEqual({ chosen: 1, why: "sample 1 is the answer 2 of the 3 samples gave, and it quotes the documents as they are." });
    const answer = await readFile(path.join(run.outDir, "items", item.id, "answer.md"), "utf8");
    expect(answer).toBe(await readFile(path.join(run.outDir, "items", item.id, "samples", "1.md"), "utf8"));
    expect(await readFile(path.join(run.outDir, "items", item.id, "samples", "3.md"), "utf8")).toContain("A second reading of the figures gives a different result.");
    expect(await readFile(path.join(run.outDir, "items", item.id, "reasoning.md"), "utf8")).toContain("# Judgement");
    // The judging call is billed with the samples.
    expect(item.usage.inputTokens).toBe(calls.reduce((s, c) => s + c.promptTokens, 0));
  }, 90_000);

  it("a runaway script is stopped, reported to the model as an error, and the item still ends cleanly", async () => {
    const file = path.join(dir, "runaway.yaml");
    await writeFile(file, `name: runaway\ndocuments:\n  - path: northwind.md\nprompt: Compute the ratio.\ntools: [code]\nlimits: { maxToolRounds: 3 }\n`);
    const seen: ChatRequest[] = [];
    const model: ModelClient = {
      async chat(req) {
        seen.push(req);
        const last = req.messages.at(-1)!;
        const usage = { inputTokens: 3000, outputTokens: 40, reasoningTokens: 0, cachedTokens: 0 };
        if (last.role !== "tool") {
          const code = seen.length === 1 ? "let x = 0; while (true) { x++ }" : "const a = []; while (true) a.push(new Array(1e5).fill(1));";
          return { cacheType: "implicit", reasoning: "", answer: "", finishReason: "tool_calls", requestId: `r${seen.length}`, usage, toolCalls: [{ id: `c${seen.length}`, name: "run_javascript", arguments: JSON.stringify({ code }) }] };
        }
        // After the first error, try a memory bomb; after that, answer with what the tool said.
        if (seen.length === 2) {
          return { cacheType: "implicit", reasoning: "", answer: "", finishReason: "tool_calls", requestId: "r2", usage, toolCalls: [{ id: "c2", name: "run_javascript", arguments: JSON.stringify({ code: "const a = []; while (true) a.push(new Array(1e5).fill(1));" }) }] };
        }
        return { cacheType: "implicit", reasoning: "", answer: `The tool failed: ${typeof last.content === "string" ? last.content : ""}`, finishReason: "stop", requestId: "r3", usage };
      },
    };
    const run = await runLocalJob({ jobFile: file, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, model });
    expect(run.manifest.status).toBe("succeeded");
    expect(seen).toHaveLength(3);
    // What the model read back, in order: the time limit, then the memory limit; the last round could not call tools.
    const toolMessages = seen.flatMap((r) => r.messages.filter((m) => m.role === "tool").map((m) => m.content));
    expect(toolMessages.at(-2)).toMatch(/^error: stopped: the script ran past its \d+ ms time limit$/);
    expect(toolMessages.at(-1)).toMatch(/^error: stopped: the script passed its \d+ MiB memory limit/);
    expect(seen.map((r) => r.toolChoice)).toEqual(["auto", "auto", "none"]);
    const answer = await readFile(path.join(run.outDir, "items", run.manifest.items[0]!.id, "answer.md"), "utf8");
    expect(answer).toContain("memory limit");
  }, 90_000);
});
