import { createHash } from "node:crypto";
import { Ajv } from "ajv";
import { default as addFormats } from "ajv-formats";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSimHeader, parseSimProof, startSimulator, type Simulator } from "../shared/sim/index.ts";
import { countChatTokens, countTokens } from "../shared/tokens/index.ts";

const KEY = "sk-sim-test";
let sim: Simulator;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSimulator({ apiKey: KEY });
  client = new OpenAI({ apiKey: KEY, baseURL: sim.baseURL, maxRetries: 0 });
});
afterAll(() => sim.stop());

type Ext = { enable_thinking?: boolean; thinking_budget?: number };
type Chunk = OpenAI.ChatCompletionChunk & { choices: { delta: { reasoning_content?: string | null; content?: string | null; role?: string } }[] };

const docA = "Revenue grew 12% in 2025.\nRisks: currency, supply chain, and regulation.\n".repeat(40) + "Ünïcödé — 风险 ✓";
const docB = "Board minutes. Nothing material.\n";
const block = (i: number, source: string, text: string) => `<document index="${i}" source="${source}">\n${text}\n</document>`;
const messages = [
  { role: "system" as const, content: "You are a careful analyst." },
  {
    role: "user" as const,
    content: `${block(1, "docs/report.md", docA)}\n\n${block(2, "docs/minutes.txt", docB)}\n\nAnswer each question below.\n\n## risks\nList the main risks.\n\n## growth\nHow fast did revenue grow?`,
  },
];
const sha = (t: string) => createHash("sha256").update(t, "utf8").digest("hex");

async function collect(params: Record<string, unknown>) {
  const stream = (await client.chat.completions.create({
    model: "qwen3-max",
    stream: true,
    stream_options: { include_usage: true },
    messages,
    ...params,
  } as OpenAI.ChatCompletionCreateParamsStreaming & Ext)) as AsyncIterable<Chunk>;
  const chunks: Chunk[] = [];
  for await (const c of stream) chunks.push(c);
  const reasoning = chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? "").join("");
  const answer = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  return { chunks, reasoning, answer, usage: chunks.at(-1)!.usage! };
}

async function rawSse(body: Record<string, unknown>) {
  const res = await fetch(`${sim.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "qwen3-max", messages, stream: true, ...body }),
  });
  return { res, text: await res.text() };
}

describe("streaming, thinking on", () => {
  it("has the §4 shape chunk by chunk, with usage arithmetic and proof", async () => {
    const { chunks, reasoning, answer, usage } = await collect({ enable_thinking: true, thinking_budget: 4096 });
    const first = chunks[0]!;
    expect(first.choices[0]!.delta).toEqual({ content: null, role: "assistant", reasoning_content: "" });
    expect(first.choices[0]!.finish_reason).toBeNull();
    expect(first.choices[0]!.logprobs).toBeNull();
    expect(first.id).toMatch(/^chatcmpl-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    for (const c of chunks) {
      expect(c.id).toBe(first.id);
      expect(c.created).toBe(first.created);
      expect(c.model).toBe("qwen3-max");
      expect(c.object).toBe("chat.completion.chunk");
      expect(c.system_fingerprint).toBeNull();
    }
    expect(Math.abs(first.created - Date.now() / 1000)).toBeLessThan(30);

    // reasoning deltas, then content deltas, then the empty final delta, then the usage chunk
    const body = chunks.slice(1, -2);
    const firstContent = body.findIndex((c) => c.choices[0]!.delta.content);
    expect(firstContent).toBeGreaterThan(0);
    for (const c of body.slice(0, firstContent)) {
      expect(c.choices[0]!.delta.content).toBeNull();
      expect(typeof c.choices[0]!.delta.reasoning_content).toBe("string");
    }
    for (const c of body.slice(firstContent)) {
      expect(c.choices[0]!.delta.reasoning_content).toBeNull();
      expect(typeof c.choices[0]!.delta.content).toBe("string");
      expect(c.choices[0]!.finish_reason).toBeNull();
    }
    const final = chunks.at(-2)!;
    expect(final.choices[0]!.delta).toEqual({ content: "", reasoning_content: null });
    expect(final.choices[0]!.finish_reason).toBe("stop");
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);

    // usage: exact token counts of what was sent and emitted
    expect(usage.prompt_tokens).toBe(countChatTokens(messages));
    expect(usage.completion_tokens_details!.reasoning_tokens).toBe(countTokens(reasoning));
    expect(usage.completion_tokens).toBe(countTokens(reasoning) + countTokens(answer));
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(usage.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(reasoning.length).toBeGreaterThan(100);
    expect(usage.completion_tokens_details!.reasoning_tokens).toBeLessThanOrEqual(4096);

    // proof
    expect(parseSimProof(answer)).toEqual([
      { index: 1, source: "docs/report.md", tokens: countTokens(docA), sha256: sha(docA) },
      { index: 2, source: "docs/minutes.txt", tokens: countTokens(docB), sha256: sha(docB) },
    ]);
    expect(parseSimHeader(answer)).toEqual({ model: "qwen3-max", promptTokens: usage.prompt_tokens, documents: 2 });
    expect(answer).toContain("## risks");
    expect(answer).toContain("List the main risks.");
    expect(answer).toContain("## growth");
    expect(reasoning).toContain("docs/report.md");

    const call = sim.calls.find((c) => c.id === first.id)!;
    expect(call).toMatchObject({ model: "qwen3-max", stream: true, thinking: true, status: 200, outcome: "ok", promptTokens: usage.prompt_tokens });
    expect(call.documents.map((d) => d.sha256)).toEqual([sha(docA), sha(docB)]);
  });

  it("is deterministic", async () => {
    const a = await collect({ enable_thinking: true });
    const b = await collect({ enable_thinking: true });
    expect(a.answer).toBe(b.answer);
    expect(a.reasoning).toBe(b.reasoning);
  });

  it("thinking_budget caps the reasoning", async () => {
    const { reasoning, usage, chunks } = await collect({ enable_thinking: true, thinking_budget: 20 });
    expect(countTokens(reasoning)).toBeLessThanOrEqual(20);
    expect(usage.completion_tokens_details!.reasoning_tokens).toBe(countTokens(reasoning));
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop");
  });

  it("raw SSE: data lines only, usage:null everywhere but the usage chunk, [DONE]", async () => {
    const { res, text } = await rawSse({ enable_thinking: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("retry-after")).toBeNull();
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    const events = text.split("\n\n").filter(Boolean);
    for (const e of events) expect(e).toMatch(/^data: [^\n]*$/);
    expect(text).not.toMatch(/^event:/m);
    const json = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    for (const j of json.slice(0, -1)) {
      expect(j).toHaveProperty("usage", null);
      expect(Object.keys(j).sort()).toEqual(["choices", "created", "id", "model", "object", "system_fingerprint", "usage"]);
      expect(Object.keys(j.choices[0]).sort()).toEqual(["delta", "finish_reason", "index", "logprobs"]);
      expect(j).not.toHaveProperty("service_tier");
    }
    const u = json.at(-1);
    expect(u.choices).toEqual([]);
    expect(Object.keys(u.usage).sort()).toEqual(["completion_tokens", "completion_tokens_details", "prompt_tokens", "prompt_tokens_details", "total_tokens"]);
    expect(u.id).toBe(json[0].id);
  });

  it("without include_usage there is no usage chunk", async () => {
    const { text } = await rawSse({ enable_thinking: true });
    const json = text
      .split("\n\n")
      .filter((e) => e && e !== "data: [DONE]")
      .map((e) => JSON.parse(e.slice(6)));
    expect(json.every((j) => j.usage === null && j.choices.length === 1)).toBe(true);
    expect(json.at(-1).choices[0].finish_reason).toBe("stop");
  });
});

describe("streaming, thinking off", () => {
  it("first delta is empty content with role, no reasoning_content anywhere", async () => {
    const { chunks, reasoning, answer, usage } = await collect({ enable_thinking: false });
    expect(chunks[0]!.choices[0]!.delta).toEqual({ content: "", role: "assistant" });
    for (const c of chunks.slice(1, -1)) expect(c.choices[0]!.delta).not.toHaveProperty("reasoning_content");
    expect(chunks.at(-2)!.choices[0]!.delta).toEqual({ content: "" });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop");
    expect(reasoning).toBe("");
    expect(usage.completion_tokens_details!.reasoning_tokens).toBe(0);
    expect(usage.completion_tokens).toBe(countTokens(answer));
    expect(parseSimProof(answer)).toHaveLength(2);
  });

  it("thinking is off by default", async () => {
    const { reasoning } = await collect({});
    expect(reasoning).toBe("");
  });

  it("max_completion_tokens cuts the answer with finish_reason length", async () => {
    const { chunks, answer, usage } = await collect({ max_completion_tokens: 10 });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("length");
    expect(countTokens(answer)).toBeLessThanOrEqual(10);
    expect(usage.completion_tokens).toBe(countTokens(answer));
    expect(usage.completion_tokens).toBeGreaterThan(5);
  });

  it("max_completion_tokens limits the reasoning and the answer together", async () => {
    const { chunks, answer, reasoning, usage } = await collect({ max_completion_tokens: 30, thinking_budget: 20, enable_thinking: true });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("length");
    expect(countTokens(reasoning)).toBeLessThanOrEqual(20);
    expect(countTokens(reasoning) + countTokens(answer)).toBeLessThanOrEqual(30);
    expect(countTokens(answer)).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeLessThanOrEqual(30);
  });
});

describe("non-streaming", () => {
  it("returns the §5 body", async () => {
    const r = await client.chat.completions.create({ model: "qwen3-max", messages });
    expect(r.object).toBe("chat.completion");
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.system_fingerprint).toBeNull();
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(r.choices[0]!.finish_reason).toBe("stop");
    expect(r.usage!.prompt_tokens).toBe(countChatTokens(messages));
    expect(r.usage!.completion_tokens).toBe(countTokens(r.choices[0]!.message.content!));
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
    expect(parseSimProof(r.choices[0]!.message.content!)[0]!.sha256).toBe(sha(docA));
  });

  it("also answers on /v1 and with content parts", async () => {
    const c2 = new OpenAI({ apiKey: KEY, baseURL: sim.baseURL.replace("/compatible-mode/v1", "/v1"), maxRetries: 0 });
    const parts = [
      { type: "text" as const, text: `${block(1, "a.txt", "part one")}\n\nWhat is in ` },
      { type: "text" as const, text: "a.txt?" },
    ];
    const r = await c2.chat.completions.create({ model: "qwen3-max", messages: [{ role: "user", content: parts }] });
    expect(r.usage!.prompt_tokens).toBe(countChatTokens([{ role: "user", content: parts.map((p) => p.text).join("") }]));
    const content = r.choices[0]!.message.content!;
    expect(parseSimProof(content)).toEqual([{ index: 1, source: "a.txt", tokens: countTokens("part one"), sha256: sha("part one") }]);
    expect(content).toContain("What is in a.txt?");
  });
});

function ajv() {
  const a = new Ajv({ strict: false });
  addFormats.default(a);
  return a;
}

describe("structured output", () => {
  const schema = {
    type: "object",
    properties: {
      summary: { type: "string" },
      risks: { type: "array", minItems: 2, items: { type: "object", properties: { name: { type: "string", maxLength: 40 }, severity: { enum: ["low", "medium", "high"] }, page: { type: "integer", minimum: 1 } }, required: ["name", "severity", "page"], additionalProperties: false } },
      score: { type: "number", minimum: 0, maximum: 1 },
      material: { type: "boolean" },
      as_of: { type: "string", format: "date" },
      meta: { $ref: "#/$defs/meta" },
    },
    required: ["summary", "risks", "score", "material", "as_of", "meta"],
    additionalProperties: false,
    $defs: { meta: { type: "object", properties: { reviewer: { type: ["string", "null"] }, count: { type: "integer", exclusiveMinimum: 3 } }, required: ["reviewer", "count"] } },
  };

  it("json_schema answers validate and carry the proof", async () => {
    const r = await client.chat.completions.create({
      model: "qwen3-max",
      messages,
      response_format: { type: "json_schema", json_schema: { name: "risks", schema, strict: true } },
    });
    const content = r.choices[0]!.message.content!;
    const value = JSON.parse(content);
    const validate = ajv().compile(schema);
    expect(validate(value), JSON.stringify(validate.errors)).toBe(true);
    expect(value.summary).toContain("longdoc-sim:");
    expect(parseSimProof(content).map((p) => p.sha256)).toEqual([sha(docA), sha(docB)]);
  });

  it("json_schema in a stream is the same JSON", async () => {
    const { answer } = await collect({ response_format: { type: "json_schema", json_schema: { name: "risks", schema } } });
    expect(ajv().validate(schema, JSON.parse(answer))).toBe(true);
  });

  it("json_object gives a JSON object with the proof", async () => {
    const r = await client.chat.completions.create({
      model: "qwen3-max",
      messages: [...messages, { role: "user", content: "Reply in JSON." }],
      response_format: { type: "json_object" },
    });
    const content = r.choices[0]!.message.content!;
    expect(typeof JSON.parse(content)).toBe("object");
    expect(parseSimProof(content)).toHaveLength(2);
  });
});
