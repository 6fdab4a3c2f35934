import OpenAI, { APIConnectionError, APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFaultSpec, startSimulator, type FaultKind, type Simulator } from "../shared/sim/index.ts";

const KEY = "sk-sim-errors";
let sim: Simulator;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSimulator({ apiKey: KEY });
  client = new OpenAI({ apiKey: KEY, baseURL: sim.baseURL, maxRetries: 0 });
});
afterAll(() => sim.stop());

const user = (content: string) => [{ role: "user" as const, content }];
const base = { model: "qwen3-max", messages: user("Hello there") };

async function post(body: Record<string, unknown>, key = KEY) {
  const res = await fetch(`${sim.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function expectEnvelope(text: string, code: string, type: string, message: string) {
  const body = JSON.parse(text);
  expect(Object.keys(body).sort()).toEqual(["error", "id", "request_id"]);
  expect(body.error).toEqual({ message, type, param: null, code });
  expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(body.id).toBe(`chatcmpl-${body.request_id}`);
}

async function sdkError(p: Promise<unknown>): Promise<APIError> {
  try {
    const r = await p;
    if (r && typeof r === "object" && Symbol.asyncIterator in r) for await (const _ of r as AsyncIterable<unknown>);
  } catch (e) {
    expect(e).toBeInstanceOf(APIError);
    return e as APIError;
  }
  throw new Error("expected an error");
}

describe("auth and model", () => {
  it("a wrong key is 401 invalid_api_key without id", async () => {
    const r = await post(base, "sk-wrong");
    expect(r.status).toBe(401);
    const body = JSON.parse(r.text);
    expect(body).not.toHaveProperty("id");
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.error).toEqual({ message: "Incorrect API key provided.", type: "invalid_request_error", param: null, code: "invalid_api_key" });
    const e = await sdkError(new OpenAI({ apiKey: "nope", baseURL: sim.baseURL, maxRetries: 0 }).chat.completions.create(base));
    expect(e.status).toBe(401);
    expect(e.code).toBe("invalid_api_key");
  });

  it("without apiKey any key is accepted", async () => {
    const open = await startSimulator({});
    try {
      const r = await new OpenAI({ apiKey: "anything", baseURL: open.baseURL, maxRetries: 0 }).chat.completions.create(base);
      expect(r.choices[0]!.finish_reason).toBe("stop");
    } finally {
      await open.stop();
    }
  });

  it("an unknown model is 404 model_not_found", async () => {
    const r = await post({ ...base, model: "qwen9-giant" });
    expect(r.status).toBe(404);
    expectEnvelope(r.text, "model_not_found", "invalid_request_error", "The model qwen9-giant does not exist or you do not have access to it.");
    const e = await sdkError(client.chat.completions.create({ ...base, model: "qwen9-giant" }));
    expect(e.status).toBe(404);
  });
});

describe("400 invalid_parameter_error with the reference's messages", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["max_tokens above 65536", { max_tokens: 65537 }, "<400> InternalError.Algo.InvalidParameter: Range of max_tokens should be [1, 65536]"],
    ["max_tokens 0", { max_tokens: 0 }, "<400> InternalError.Algo.InvalidParameter: Range of max_tokens should be [1, 65536]"],
    ["max_tokens above 32768 when thinking", { stream: true, enable_thinking: true, max_tokens: 32769 }, "<400> InternalError.Algo.InvalidParameter: Range of max_tokens should be [1, 32768]"],
    ["thinking_budget above 81920", { stream: true, enable_thinking: true, thinking_budget: 81921 }, "The thinking_budget parameter must be a positive integer and not greater than 81920"],
    ["non-streaming thinking", { enable_thinking: true }, "parameter.enable_thinking must be set to false for non-streaming calls"],
    ["json_object without the word", { response_format: { type: "json_object" } }, "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."],
    [
      "json mode with thinking",
      { stream: true, enable_thinking: true, messages: user("json please"), response_format: { type: "json_object" } },
      "Json mode response is not supported when enable_thinking is true",
    ],
    [
      "json_schema with thinking",
      { stream: true, enable_thinking: true, response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object" } } } },
      "Json mode response is not supported when enable_thinking is true",
    ],
    ["temperature 2", { temperature: 2 }, "Temperature should be in [0.0, 2.0)"],
    ["temperature -0.1", { temperature: -0.1 }, "Temperature should be in [0.0, 2.0)"],
    ["top_p 0", { top_p: 0 }, "<400> InternalError.Algo.InvalidParameter: Range of top_p should be (0.0, 1.0]"],
    ["top_p 1.5", { top_p: 1.5 }, "<400> InternalError.Algo.InvalidParameter: Range of top_p should be (0.0, 1.0]"],
    ["seed -1", { seed: -1 }, "-1 is lesser than the minimum of 0 - 'seed'"],
  ];
  for (const [name, extra, message] of cases) {
    it(name, async () => {
      const r = await post({ ...base, ...extra });
      expect(r.status).toBe(400);
      expectEnvelope(r.text, "invalid_parameter_error", "invalid_request_error", message);
    });
  }

  it("valid edge values pass", async () => {
    for (const extra of [{ temperature: 0 }, { temperature: 1.99 }, { top_p: 1 }, { seed: 0 }, { seed: 2 ** 31 - 1 }, { max_tokens: 65536 }, { max_tokens: 1 }]) {
      const r = await post({ ...base, ...extra });
      expect(r.status, JSON.stringify(extra)).toBe(200);
    }
    const r = await post({ ...base, stream: true, enable_thinking: true, thinking_budget: 81920, max_tokens: 32768 });
    expect(r.status).toBe(200);
  });

  it("input longer than 258048 tokens", async () => {
    // digits are single tokens, so this prompt is a little over the limit
    const big = "0123456789".repeat(25_810);
    const r = await post({ ...base, messages: user(big) });
    expect(r.status).toBe(400);
    expectEnvelope(r.text, "invalid_parameter_error", "invalid_request_error", "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 258048]");
    const e = await sdkError(client.chat.completions.create({ ...base, messages: user(big) }));
    expect(e.status).toBe(400);
    expect(e.code).toBe("invalid_parameter_error");
    expect(sim.calls.at(-1)!.promptTokens).toBeGreaterThan(258_048);
  });

  it("the SDK surfaces the code", async () => {
    const e = await sdkError(client.chat.completions.create({ ...base, temperature: 2 }));
    expect(e.status).toBe(400);
    expect(e.code).toBe("invalid_parameter_error");
    expect(e.message).toContain("Temperature should be in [0.0, 2.0)");
  });
});

describe("injected faults", () => {
  const statusFaults: [FaultKind, number, string, string][] = [
    ["500", 500, "internal_error", "An internal error has occured, please try again later or contact service support."],
    ["timeout", 500, "RequestTimeOut", "Request timed out, please try again later."],
    ["503", 503, "ModelUnavailable", "Too many requests. Your requests are being throttled due to system capacity limits. Please try again later."],
    ["429", 429, "limit_requests", "Requests rate limit exceeded, please try again later."],
    ["burst", 429, "limit_burst_rate", "Request rate increased too quickly. To ensure system stability, please adjust your client logic to scale requests more smoothly over time."],
    ["quota", 429, "insufficient_quota", "You exceeded your current quota, please check your plan and billing details."],
    ["403", 403, "AccessDenied", "Access denied."],
    ["arrearage", 400, "Arrearage", "Access denied, please make sure your account is in good standing."],
  ];
  for (const [kind, status, code, message] of statusFaults) {
    it(`${kind} → ${status} ${code}`, async () => {
      sim.injectFaults({ kind });
      const r = await post(base);
      expect(r.status).toBe(status);
      expect(r.headers.get("retry-after")).toBeNull();
      expectEnvelope(r.text, code, code, message);
      sim.injectFaults({ kind });
      const e = await sdkError(client.chat.completions.create({ ...base, stream: true }));
      expect(e.status).toBe(status);
      expect(e.code).toBe(code);
      expect(sim.calls.at(-1)).toMatchObject({ fault: kind, status, errorCode: code, outcome: "error" });
    });
  }

  it("401 and 404 faults", async () => {
    sim.injectFaults([{ kind: "401" }, { kind: "404" }]);
    const a = await post(base);
    expect(a.status).toBe(401);
    expect(JSON.parse(a.text)).not.toHaveProperty("id");
    const b = await post(base);
    expect(b.status).toBe(404);
    expectEnvelope(b.text, "model_not_found", "invalid_request_error", "The model qwen3-max does not exist or you do not have access to it.");
  });

  it("count fails exactly the next N requests", async () => {
    sim.injectFaults({ kind: "500", count: 2 });
    expect((await post(base)).status).toBe(500);
    expect((await post(base)).status).toBe(500);
    expect((await post(base)).status).toBe(200);
  });

  it("moderation before the stream: HTTP 400 with an SSE body", async () => {
    sim.injectFaults({ kind: "moderation", count: 2 });
    const r = await post({ ...base, stream: true });
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(r.text).toMatch(/^data: \{"error":\{"message":"Input data may contain inappropriate content\.","type":"data_inspection_failed","param":null,"code":"data_inspection_failed"\},"id":"chatcmpl-[0-9a-f-]{36}","request_id":"[0-9a-f-]{36}"\}\n\n$/);
    const e = await sdkError(client.chat.completions.create({ ...base, stream: true }));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/^400 data: \{"error"/);
  });

  it("midstream error event after some deltas: APIError without status", async () => {
    sim.injectFaults({ kind: "midstream", afterDeltas: 3 });
    const stream = await client.chat.completions.create({ ...base, stream: true, stream_options: { include_usage: true } });
    let got = "";
    let err: unknown;
    try {
      for await (const c of stream) got += c.choices[0]?.delta.content ?? "";
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBeUndefined();
    expect((err as APIError).code).toBe("data_inspection_failed");
    expect(got.length).toBeGreaterThan(0);
    expect(sim.calls.at(-1)).toMatchObject({ fault: "midstream", status: 200, outcome: "midstream_error", errorCode: "data_inspection_failed" });

    sim.injectFaults({ kind: "midstream", afterDeltas: 2 });
    const raw = await post({ ...base, stream: true });
    const events = raw.text.split("\n\n").filter(Boolean);
    expect(events).toHaveLength(4); // role chunk, 2 deltas, error
    expect(JSON.parse(events.at(-1)!.slice(6)).error.code).toBe("data_inspection_failed");
    expect(raw.text).not.toContain("[DONE]");
  });

  it("connection drop mid-stream surfaces as an error", async () => {
    sim.injectFaults({ kind: "drop", afterDeltas: 2 });
    const stream = await client.chat.completions.create({ ...base, stream: true });
    let deltas = 0;
    let err: unknown;
    try {
      for await (const c of stream) if (c.choices[0]?.delta.content) deltas++;
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect(deltas).toBe(2);
    expect(sim.calls.at(-1)).toMatchObject({ fault: "drop", outcome: "dropped" });
  });

  it("reset before any response is a connection error", async () => {
    sim.injectFaults({ kind: "reset" });
    let err: unknown;
    try {
      await client.chat.completions.create(base);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(APIConnectionError);
  });
});

describe("random faults from a spec", () => {
  it("parses the grammar", () => {
    expect(parseFaultSpec("500:0.1,503:5%,midstream:0.05,429:0.1,seed=7")).toEqual({
      seed: 7,
      rules: [
        { kind: "500", probability: 0.1 },
        { kind: "503", probability: 0.05 },
        { kind: "midstream", probability: 0.05 },
        { kind: "429", probability: 0.1 },
      ],
    });
    expect(parseFaultSpec("limit_burst_rate:0.2").rules[0]!.kind).toBe("burst");
    expect(() => parseFaultSpec("teapot:0.1")).toThrow(/unknown fault kind 'teapot'/);
    expect(() => parseFaultSpec("500:2")).toThrow(/within \[0, 1\]/);
    expect(() => parseFaultSpec("500:0.6,503:0.6")).toThrow(/sum/);
    expect(() => parseFaultSpec("500")).toThrow(/KIND:PROBABILITY/);
  });

  it("is deterministic for a seed and roughly honours the rates", async () => {
    const run = async () => {
      const s = await startSimulator({ faults: "500:0.3,503:0.2,seed=42" });
      try {
        const c = new OpenAI({ apiKey: "x", baseURL: s.baseURL, maxRetries: 0 });
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) {
          try {
            await c.chat.completions.create(base);
            statuses.push(200);
          } catch (e) {
            statuses.push((e as APIError).status ?? -1);
          }
        }
        return statuses;
      } finally {
        await s.stop();
      }
    };
    const a = await run();
    expect(await run()).toEqual(a);
    const n500 = a.filter((s) => s === 500).length;
    const n503 = a.filter((s) => s === 503).length;
    expect(n500).toBeGreaterThan(3);
    expect(n503).toBeGreaterThan(1);
    expect(a.filter((s) => s === 200).length).toBeGreaterThan(8);
  });
});
