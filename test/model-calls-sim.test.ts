import { afterEach, describe, expect, it } from "vitest";
import { startSimulator, type Simulator, type SimulatorOptions } from "../shared/sim/index.ts";

const sims: Simulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});
async function start(o: SimulatorOptions = {}) {
  const sim = await startSimulator(o);
  sims.push(sim);
  return sim;
}

async function post(sim: Simulator, body: Record<string, unknown>, headers: Record<string, string> = { authorization: "Bearer sk-any" }) {
  const res = await fetch(`${sim.baseURL}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: JSON.parse(await res.text()) as Record<string, any> };
}

const longSystem = Array.from({ length: 120 }, (_, i) => `Rule ${i}: keep figures for segment ${i % 9} exact to the cent.`).join("\n");
const ask = (q: string) => ({ model: "qwen3-max", max_tokens: 16, messages: [{ role: "system", content: longSystem }, { role: "user", content: q }] });

describe("a stricter simulator", () => {
  it("a request without an Authorization header is 401 invalid_api_key (no id), even when any key is accepted", async () => {
    const sim = await start();
    const r = await post(sim, ask("Hi?"), {});
    expect(r.status).toBe(401);
    expect(Object.keys(r.body).sort()).toEqual(["error", "request_id"]);
    expect(r.body.error).toEqual({ message: "Incorrect API key provided.", type: "invalid_request_error", param: null, code: "invalid_api_key" });
    expect((await post(sim, ask("Hi?"), { authorization: "Bearer" })).status).toBe(401);
    expect((await post(sim, ask("Hi?"))).status).toBe(200);
  });

  it("implicit cache hits happen at the configured rate, the same for the same seed", async () => {
    const hits = async (o: SimulatorOptions, n = 200) => {
      const sim = await start(o);
      await post(sim, ask("First question?"));
      const got: boolean[] = [];
      for (let i = 0; i < n; i++) {
        const r = await post(sim, ask(`Question ${i}?`));
        got.push(r.body.usage.prompt_tokens_details.cached_tokens > 0);
      }
      return got;
    };
    const half = await hits({ implicitCacheHitRate: 0.5, cacheSeed: 7 });
    const rate = half.filter(Boolean).length / half.length;
    expect(rate).toBeGreaterThan(0.4);
    expect(rate).toBeLessThan(0.6);
    expect(await hits({ implicitCacheHitRate: 0.5, cacheSeed: 7 })).toEqual(half);
    expect(await hits({ implicitCacheHitRate: 0.5, cacheSeed: 8 })).not.toEqual(half);
    const byDefault = (await hits({})).filter(Boolean).length / 200;
    expect(byDefault).toBeGreaterThan(0.7);
    expect(byDefault).toBeLessThan(0.9);
    expect((await hits({ implicitCacheHitRate: 0 }, 20)).some(Boolean)).toBe(false);
    expect((await hits({ implicitCacheHitRate: 1 }, 20)).every(Boolean)).toBe(true);
  });

  it("the surge fault is 429 limit_burst_rate with the reference's message", async () => {
    const sim = await start();
    sim.injectFaults({ kind: "surge" });
    const r = await post(sim, ask("Hi?"));
    expect(r.status).toBe(429);
    expect(r.body.error).toEqual({
      message: "Request rate increased too quickly. To ensure system stability, please adjust your client logic to scale requests more smoothly over time.",
      type: "limit_burst_rate",
      param: null,
      code: "limit_burst_rate",
    });
    expect(r.body.id).toBe(`chatcmpl-${r.body.request_id}`);
    expect(sim.calls.at(-1)!.fault).toBe("burst");
  });

  it("surge mode refuses a sudden ramp-up with limit_burst_rate, not a steady rate", async () => {
    let t = 1_000_000;
    const sim = await start({ now: () => t, surge: { factor: 3, minPerSecond: 2 }, rpm: 600, tpm: 10_000_000, perSecondLimits: false });
    // one request a second for a minute: never a surge
    for (let i = 0; i < 60; i++) {
      expect((await post(sim, ask(`steady ${i}`))).status).toBe(200);
      t += 1000;
    }
    // then four in one second: three times the minute's average of 1/s is passed at the fourth
    const codes: (string | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await post(sim, ask(`burst ${i}`));
      codes.push(r.status === 200 ? null : r.body.error.code);
    }
    expect(codes).toEqual([null, null, null, "limit_burst_rate"]);
  });

  it("time to first token grows with the input not read from the cache (prefillTokensPerSecond)", async () => {
    const sim = await start({ prefillTokensPerSecond: 2000, implicitCacheHitRate: 0 });
    await post(sim, ask("Hi?"));
    const call = sim.calls.at(-1)!;
    const ttft = call.firstByteAt! - call.receivedAt;
    expect(ttft).toBeGreaterThanOrEqual((call.promptTokens / 2000) * 1000 - 20);
    const fast = await start();
    await post(fast, ask("Hi?"));
    const c2 = fast.calls.at(-1)!;
    expect(c2.firstByteAt! - c2.receivedAt).toBeLessThan(ttft / 2);
  });
});
