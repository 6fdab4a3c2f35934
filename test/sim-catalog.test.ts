import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { getModel, loadCatalog, priceFor } from "../shared/model/catalog.ts";
import { startSimulator } from "../shared/sim/index.ts";

const tmp = (name: string, content: string) => {
  const dir = mkdtempSync(join(tmpdir(), "longdoc-catalog-"));
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

describe("model catalog", () => {
  it("has the reference's numbers", () => {
    const m = getModel(loadCatalog(), "qwen3-max");
    expect(m).toMatchObject({
      id: "qwen3-max",
      contextTokens: 262_144,
      maxInputTokens: 258_048,
      maxOutputTokens: 65_536,
      maxOutputTokensThinking: 32_768,
      maxThinkingBudget: 81_920,
      thinking: "hybrid",
      rpm: 600,
      tpm: 1_000_000,
    });
    expect(m.tiers.map((t) => [t.upToInputTokens, t.inputPerM, t.outputPerM])).toEqual([
      [32_768, 1.2, 6],
      [131_072, 2.4, 12],
      [258_048, 3, 15],
    ]);
    const snap = getModel(loadCatalog(), "qwen3-max-2025-09-23");
    expect(snap).toMatchObject({ thinking: "none", rpm: 60, tpm: 100_000 });
    for (const model of Object.values(loadCatalog().models)) expect(model.sources).toBeTruthy();
  });

  it("unknown models name the known ones", () => {
    expect(() => getModel(loadCatalog(), "gpt-9")).toThrow(/unknown model 'gpt-9'.*qwen3-max/);
  });

  it("prices the whole request at its input tier, cached at the hit rate", () => {
    const m = getModel(loadCatalog(), "qwen3-max");
    expect(priceFor(m, { inputTokens: 1_000, outputTokens: 1_000, cachedTokens: 0 })).toEqual({ tier: "0-32K", tierIndex: 0, cost: 0.0072, currency: "USD", costUsd: 0.0072 });
    expect(priceFor(m, { inputTokens: 32_768, outputTokens: 0, cachedTokens: 0 }).tier).toBe("0-32K");
    expect(priceFor(m, { inputTokens: 32_769, outputTokens: 0, cachedTokens: 0 })).toMatchObject({ tier: "32K-128K", costUsd: 0.0786456 });
    // 200K input: all at tier 3; 100K of it cached at 20% of $3
    expect(priceFor(m, { inputTokens: 200_000, outputTokens: 10_000, cachedTokens: 100_000 })).toEqual({
      tier: "128K-252K",
      tierIndex: 2,
      cost: (100_000 * 3 + 100_000 * 0.6 + 10_000 * 15) / 1e6,
      currency: "USD",
      costUsd: (100_000 * 3 + 100_000 * 0.6 + 10_000 * 15) / 1e6,
    });
    // explicit cache: writes at 125%, hits at 10%
    expect(priceFor(m, { inputTokens: 10_000, outputTokens: 0, cachedTokens: 0, cacheWriteTokens: 4_000, cacheType: "ephemeral" }).costUsd).toBeCloseTo((6_000 * 1.2 + 4_000 * 1.5) / 1e6, 12);
    expect(priceFor(m, { inputTokens: 10_000, outputTokens: 0, cachedTokens: 4_000, cacheType: "ephemeral" }).costUsd).toBeCloseTo((6_000 * 1.2 + 4_000 * 0.12) / 1e6, 12);
  });

  it("merges an override file and validates it", () => {
    const p = tmp("over.json", JSON.stringify({ models: { "qwen3-max": { rpm: 30, maxInputTokens: 1000 } } }));
    const m = getModel(loadCatalog(p), "qwen3-max");
    expect(m.rpm).toBe(30);
    expect(m.maxInputTokens).toBe(1000);
    expect(m.tpm).toBe(1_000_000);
    expect(() => loadCatalog(tmp("bad.json", JSON.stringify({ models: { "qwen3-max": { rpm: -1 } } })))).toThrow(/bad\.json: models\.qwen3-max\.rpm/);
    expect(() => loadCatalog(tmp("new.json", JSON.stringify({ models: { tiny: { rpm: 1 } } })))).toThrow(/models\.tiny/);
    expect(() => loadCatalog(tmp("x.json", "{nope"))).toThrow(/not valid JSON/);
    expect(() => loadCatalog("/nonexistent/catalog.json")).toThrow(/cannot read/);
  });

  it("the simulator takes its limits from the catalog", async () => {
    const p = tmp("small.json", JSON.stringify({ models: { "qwen3-max": { maxInputTokens: 20, maxOutputTokens: 100, tiers: [{ upToInputTokens: 1000, inputUsdPerM: 1, outputUsdPerM: 1 }] } } }));
    const sim = await startSimulator({ catalogPath: p });
    try {
      const post = (body: Record<string, unknown>) =>
        fetch(`${sim.baseURL}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer sk-test" }, body: JSON.stringify({ model: "qwen3-max", ...body }) }).then(
          async (r) => ({ status: r.status, body: (await r.json()) as { error: { message: string } } }),
        );
      const long = await post({ messages: [{ role: "user", content: "word ".repeat(50) }] });
      expect(long.status).toBe(400);
      expect(long.body.error.message).toBe("<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 20]");
      const mt = await post({ messages: [{ role: "user", content: "hi" }], max_tokens: 101 });
      expect(mt.body.error.message).toBe("<400> InternalError.Algo.InvalidParameter: Range of max_tokens should be [1, 100]");
      const models = (await fetch(`${sim.baseURL}/models`).then((r) => r.json())) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toContain("qwen3-max-2025-09-23");
    } finally {
      await sim.stop();
    }
  });
});
