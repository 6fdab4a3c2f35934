// Every call longdoc makes caps its output with `max_completion_tokens` (reasoning + answer) and
// never sends the deprecated `max_tokens` (docs/qwen-api.md §3): read from the bytes each call path
// sent, through a recording proxy in front of the simulator, on loopback.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { ObjectStore } from "../shared/run/store.ts";
import { deployment, loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { countTokens } from "../shared/tokens/index.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { startRecordingProxy, type RecordingProxy } from "./helpers/recording-proxy.ts";
import { loopbackWorker } from "./helpers/worker.ts";

type Body = Record<string, unknown> & { messages: { role: string; partial?: boolean }[] };

const REPORT = ["# Northwind FY2025", "", "| line | FY2025 | FY2024 |", "|---|---:|---:|", "| Revenue | 48,250 | 45,100 |", "| Operating income | 6,120 | 5,480 |", "", ...Array.from({ length: 40 }, (_, i) => `Note ${i + 1}: volumes, prices and mix by region.`)].join("\n");
const SCHEMA = { type: "object", additionalProperties: false, required: ["company", "revenue"], properties: { company: { type: "string" }, revenue: { type: "number" } } };

describe("max_completion_tokens on every call path", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let proxy: RecordingProxy;
  let dir: string;
  beforeAll(async () => {
    proxy = await startRecordingProxy(loop.sim.baseURL);
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-mct-"));
    await writeFile(path.join(dir, "northwind.md"), REPORT);
    await writeFile(path.join(dir, "answer.json"), JSON.stringify(SCHEMA));
  });
  afterAll(() => proxy?.stop());

  /** Runs a one-document job through the local fleet and returns the chat bodies it sent. */
  const bodiesOf = async (name: string, extra: string): Promise<Body[]> => {
    const jobFile = path.join(dir, `${name}.yaml`);
    await writeFile(jobFile, `name: ${name}\ndocuments:\n  - path: northwind.md\nprompt: What was revenue, and how did it change?\n${extra}`);
    const before = proxy.requests.length;
    const run = await runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out", name), fresh: true, workers: 1, log: silentLog, stack: loop.stack, settings: loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: proxy.baseURL }) });
    expect(run.manifest.status, JSON.stringify(run.manifest.items[0]?.error)).toBe("succeeded");
    return proxy.requests.slice(before).filter((r) => r.path.endsWith("/chat/completions")).map((r) => JSON.parse(r.body) as Body);
  };
  /** Every body carries max_completion_tokens and no max_tokens; the first (or every) one is `total`. */
  const expectCapped = (bodies: Body[], total: number, o: { laterAtMost?: boolean } = {}) => {
    expect(bodies.length).toBeGreaterThan(0);
    for (const [i, b] of bodies.entries()) {
      expect(Object.hasOwn(b, "max_tokens")).toBe(false);
      if (i > 0 && o.laterAtMost) {
        expect(b.max_completion_tokens).toBeGreaterThan(0);
        expect(b.max_completion_tokens).toBeLessThanOrEqual(total);
      } else expect(b.max_completion_tokens).toBe(total);
    }
  };

  it("plain: the answer cap", async () => {
    const bodies = await bodiesOf("plain", "thinking: { enabled: false }\nmaxOutputTokens: 512\n");
    expectCapped(bodies, 512);
    expect(bodies[0]!.enable_thinking).toBe(false);
  });

  it("thinking: the thinking budget plus the answer cap", async () => {
    const bodies = await bodiesOf("thinking", "thinking: { enabled: true, budget: 2048 }\nmaxOutputTokens: 1024\n");
    expectCapped(bodies, 1024 + 2048);
    expect(bodies[0]).toMatchObject({ enable_thinking: true, thinking_budget: 2048 });
  });

  it("JSON output (json_schema)", async () => {
    const bodies = await bodiesOf("json", "thinking: { enabled: false }\nmaxOutputTokens: 700\noutput: { format: json, schemaFile: answer.json }\n");
    expectCapped(bodies, 700);
    expect(bodies[0]!.response_format).toMatchObject({ type: "json_schema" });
  });

  it("samples: every sample's call", async () => {
    const bodies = await bodiesOf("samples", "thinking: { enabled: false }\nmaxOutputTokens: 600\nsamples: 3\n");
    expect(bodies.map((b) => b.seed).sort()).toEqual([1, 2, 3]);
    expectCapped(bodies, 600);
  });

  it("tools: every round of the tool loop", async () => {
    const bodies = await bodiesOf("tools", "thinking: { enabled: false }\nmaxOutputTokens: 800\ntools: [code]\n");
    expect(bodies.length).toBeGreaterThanOrEqual(2);
    expect(bodies.every((b) => Array.isArray(b.tools))).toBe(true);
    // later rounds get what the earlier ones left of the item's output
    expectCapped(bodies, 800, { laterAtMost: true });
  });

  it("continue: the partial-mode calls after a cut answer", async () => {
    const bodies = await bodiesOf("continued", "thinking: { enabled: false }\nmaxOutputTokens: 80\noutput: { format: text, onTruncated: continue }\n");
    expect(bodies.filter((b) => b.messages.at(-1)!.partial === true).length).toBeGreaterThan(0);
    expectCapped(bodies, 80);
  });
});

describe("max_completion_tokens on a call cut to the worker's deadline", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 30 } });
  let slow: Simulator;
  let proxy: RecordingProxy;
  afterAll(async () => {
    await proxy?.stop();
    await slow?.stop();
  });

  it("sends the deadline's budget as one max_completion_tokens and no max_tokens", async () => {
    slow = await startSimulator({ port: 0, decodeTokensPerSecond: 200, implicitCacheHitRate: 0 });
    proxy = await startRecordingProxy(slow.baseURL);
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-mct-deadline-"));
    const catalogPath = path.join(dir, "catalog.json");
    await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": { decodeTokensPerSecond: 1500, prefillTokensPerSecond: 1_000_000 } } }));
    const catalog = loadCatalog(catalogPath);
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/mct/report.md", REPORT, "text/markdown");
    const spec = parseJobText("name: cut\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 8192 }\nmaxOutputTokens: 4096\noutput: { format: text, onTruncated: keep }\n", "cut.yaml");
    await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 5 },
      { spec, model: getModel(catalog, "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, "inputs/mct/report.md") }], outputSchema: null },
    );
    const handler = loopbackWorker(loop, { catalog, baseURL: proxy.baseURL, timing: { backoffBaseMs: 10, backoffCapMs: 10 } });
    // 2 s left at an assumed 1500 tokens/s: far below the job's 4096 + 8192.
    await handler(deployment.deadlineMarginMs + 2_000);
    const body = JSON.parse(proxy.requests.find((r) => r.path.endsWith("/chat/completions"))!.body) as Body;
    expect(Object.hasOwn(body, "max_tokens")).toBe(false);
    const total = body.max_completion_tokens as number;
    expect(total).toBeLessThan(4096 + 8192);
    expect(total).toBeGreaterThan(1000);
    expect(body.thinking_budget as number).toBeLessThan(total);
  });
});

describe("the simulator caps reasoning and answer together", () => {
  let sim: Simulator;
  let client: OpenAI;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
    client = new OpenAI({ apiKey: "sk-test", baseURL: sim.baseURL, maxRetries: 0 });
  });
  afterAll(() => sim?.stop());

  const collect = async (extra: Record<string, unknown>) => {
    const stream = await client.chat.completions.create({
      model: "qwen3-max",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "Summarise the quarter's revenue and margins in a few paragraphs, please." }],
      ...extra,
    } as unknown as OpenAI.ChatCompletionCreateParamsStreaming);
    let reasoning = "";
    let answer = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      const d = c.choices[0]?.delta as { content?: string | null; reasoning_content?: string | null } | undefined;
      reasoning += d?.reasoning_content ?? "";
      answer += d?.content ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    return { reasoning, answer, finish, usage: usage! };
  };

  it("max_completion_tokens bounds reasoning + answer; the reasoning uses its budget and the answer gets the rest", async () => {
    const free = await collect({ enable_thinking: true, thinking_budget: 40, max_completion_tokens: 10_000 });
    expect(countTokens(free.reasoning)).toBeLessThanOrEqual(40);
    const answerWhole = countTokens(free.answer);
    const cap = 40 + Math.floor(answerWhole / 2);
    const r = await collect({ enable_thinking: true, thinking_budget: 40, max_completion_tokens: cap });
    expect(r.finish).toBe("length");
    expect(r.usage.completion_tokens).toBeLessThanOrEqual(cap);
    expect(r.usage.completion_tokens).toBe(r.usage.completion_tokens_details!.reasoning_tokens! + countTokens(r.answer));
    expect(r.usage.completion_tokens_details!.reasoning_tokens).toBe(countTokens(free.reasoning));
    expect(countTokens(r.answer)).toBeLessThanOrEqual(cap - countTokens(r.reasoning));
  });

  it("a lone legacy max_tokens is read as the same total cap: a thinking call spends it on reasoning", async () => {
    const r = await collect({ enable_thinking: true, max_tokens: 20 });
    expect(r.finish).toBe("length");
    expect(r.usage.completion_tokens).toBeLessThanOrEqual(20);
    expect(countTokens(r.reasoning)).toBeGreaterThan(10);
    expect(sim.calls.at(-1)).toMatchObject({ maxTokens: 20, maxCompletionTokens: null });
  });

  it("refuses max_tokens and max_completion_tokens together", async () => {
    await expect(collect({ max_tokens: 100, max_completion_tokens: 100 })).rejects.toMatchObject({ status: 400, code: "invalid_parameter_error" });
  });
});
