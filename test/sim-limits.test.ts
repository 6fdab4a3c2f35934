import OpenAI, { RateLimitError } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { startSimulator, type Simulator, type SimulatorOptions } from "../shared/sim/index.ts";
import { countTokens } from "../shared/tokens/index.ts";

let sim: Simulator | null = null;
let t = 1_000_000;
afterEach(async () => {
  await sim?.stop();
  sim = null;
});

async function start(o: SimulatorOptions) {
  t = 1_000_000;
  sim = await startSimulator({ ...o, now: () => t });
  return new OpenAI({ apiKey: "x", baseURL: sim.baseURL, maxRetries: 0 });
}

const base = { model: "qwen3-max", messages: [{ role: "user" as const, content: "Hello there" }] };

async function status(client: OpenAI, body: Record<string, unknown> = base): Promise<number | string> {
  try {
    await client.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    return 200;
  } catch (e) {
    if (e instanceof RateLimitError) {
      expect(e.headers.get("retry-after")).toBeNull();
      return `429 ${e.code}`;
    }
    throw e;
  }
}

describe("rate limits", () => {
  it("RPM over a sliding minute → limit_requests", async () => {
    const c = await start({ rpm: 3, perSecondLimits: false });
    expect(await status(c)).toBe(200);
    t += 20_000;
    expect(await status(c)).toBe(200);
    t += 20_000;
    expect(await status(c)).toBe(200);
    t += 19_000;
    expect(await status(c)).toBe("429 limit_requests");
    t += 1_001; // the first request leaves the window
    expect(await status(c)).toBe(200);
    expect(await status(c)).toBe("429 limit_requests");
    expect(sim!.calls.map((x) => x.status)).toEqual([200, 200, 200, 429, 200, 429]);
  });

  it("RPM/60 per second → limit_burst_rate", async () => {
    const c = await start({ rpm: 120 });
    expect(await status(c)).toBe(200);
    expect(await status(c)).toBe(200);
    expect(await status(c)).toBe("429 limit_burst_rate");
    t += 1_001;
    expect(await status(c)).toBe(200);
    const last = sim!.calls.at(-2)!;
    expect(last).toMatchObject({ status: 429, errorCode: "limit_burst_rate" });
  });

  it("TPM over a sliding minute → insufficient_quota, counting prompt and completion tokens", async () => {
    const probe = await start({});
    const r = await probe.chat.completions.create(base);
    const p = r.usage!.prompt_tokens;
    const total = r.usage!.total_tokens;
    await sim!.stop();

    const c = await start({ tpm: 2 * total + p, perSecondLimits: false });
    expect(await status(c)).toBe(200);
    expect(await status(c)).toBe(200);
    expect(await status(c)).toBe(200); // 2 * total + p fits exactly
    expect(await status(c)).toBe("429 insufficient_quota");
    t += 60_001;
    expect(await status(c)).toBe(200);
  });

  it("TPM/60 per second → insufficient_quota", async () => {
    const probe = await start({});
    const total = (await probe.chat.completions.create(base)).usage!.total_tokens;
    await sim!.stop();

    const c = await start({ tpm: 60 * total });
    expect(await status(c)).toBe(200);
    expect(await status(c)).toBe("429 insufficient_quota");
    t += 1_001;
    expect(await status(c)).toBe(200);
  });

  it("a single prompt larger than TPS alone is not refused by the second window", async () => {
    const c = await start({ tpm: 300 }); // TPS 5 < a 9-token prompt
    expect(await status(c)).toBe(200);
  });

  it("refused requests do not count", async () => {
    const c = await start({ rpm: 1, perSecondLimits: false });
    expect(await status(c)).toBe(200);
    for (let i = 0; i < 5; i++) expect(await status(c)).toBe("429 limit_requests");
    t += 60_001;
    expect(await status(c)).toBe(200);
  });
});

describe("context cache", () => {
  const longSystem = "You are a careful analyst of long financial documents. ".repeat(60);

  it("implicit: a repeated long prefix within 5 minutes reports cached_tokens", async () => {
    const c = await start({});
    const ask = (q: string) =>
      c.chat.completions.create({
        model: "qwen3-max",
        messages: [
          { role: "system", content: longSystem },
          { role: "user", content: q },
        ],
      });
    const a = await ask("First question?");
    expect(a.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(a.usage!.prompt_tokens_details).not.toHaveProperty("cache_type");
    t += 60_000;
    const b = await ask("Second, different question?");
    const cached = b.usage!.prompt_tokens_details!.cached_tokens!;
    const prefix = countTokens(`<|im_start|>system\n${longSystem}<|im_end|>\n`);
    expect(cached).toBeGreaterThanOrEqual(256);
    expect(cached).toBeLessThanOrEqual(prefix + 8);
    expect(cached).toBeGreaterThan(prefix - 200);
    expect(cached).toBeLessThan(b.usage!.prompt_tokens);
    expect(sim!.calls.at(-1)!.cachedTokens).toBe(cached);
    t += 5 * 60_000 + 1;
    const d = await ask("Third question?");
    expect(d.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
  });

  it("implicit: short prompts are never cached", async () => {
    const c = await start({});
    await c.chat.completions.create(base);
    const r = await c.chat.completions.create(base);
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
  });

  it("explicit cache_control: creation, then a hit", async () => {
    const c = await start({});
    const doc = "Quarterly results, segment by segment, with notes. ".repeat(150);
    const ask = (q: string) =>
      c.chat.completions.create({
        model: "qwen3-max",
        messages: [
          {
            role: "user",
            content: [{ type: "text", text: doc, cache_control: { type: "ephemeral" } } as OpenAI.ChatCompletionContentPartText, { type: "text", text: q }],
          },
        ],
      });
    const prefixTokens = countTokens(`<|im_start|>user\n${doc}`);
    expect(prefixTokens).toBeGreaterThan(1024);
    const a = await ask("What changed?");
    expect(a.usage!.prompt_tokens_details).toEqual({
      cached_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: prefixTokens },
      cache_creation_input_tokens: prefixTokens,
      cache_type: "ephemeral",
    });
    const b = await ask("What stayed the same?");
    expect(b.usage!.prompt_tokens_details).toEqual({
      cached_tokens: prefixTokens,
      cache_creation: { ephemeral_5m_input_tokens: 0 },
      cache_creation_input_tokens: 0,
      cache_type: "ephemeral",
    });
  });
});

describe("pacing", () => {
  it("decodeTokensPerSecond paces the stream", async () => {
    const c = await start({ decodeTokensPerSecond: 400 });
    const started = Date.now();
    const s = await c.chat.completions.create({ ...base, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const ch of s) usage = ch.usage ?? usage;
    const elapsed = Date.now() - started;
    const expected = (usage!.completion_tokens / 400) * 1000;
    expect(elapsed).toBeGreaterThan(expected * 0.8);
    expect(elapsed).toBeLessThan(expected + 2000);
  });
});
