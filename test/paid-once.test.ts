// A paid call is never paid again and never missing from the records: items of several calls
// (per-question, samples) under 429s, a cost cap held by calls in flight, and a cap that stops
// samples, through the real local fleet against the simulator on loopback.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog, priceFor } from "../shared/model/catalog.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { useLoopback } from "./helpers/loopback.ts";

const model = getModel(loadCatalog(), "qwen3-max");
/** What the provider's own counts come to: every answered request at its tier's price. */
const billed = (sim: Simulator, from: number) =>
  sim.calls.slice(from).filter((c) => c.outcome === "ok").reduce((sum, c) => sum + priceFor(model, { inputTokens: c.promptTokens, outputTokens: c.completionTokens, cachedTokens: c.cachedTokens }).cost, 0);

async function jobFolder(docs: number): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "longdoc-paid-once-"));
  for (let i = 1; i <= docs; i++) await writeFile(path.join(dir, `report-${i}.md`), `# Report ${i}\n\n` + `Revenue of unit ${i} rose by ${i} percent. `.repeat(40));
  return dir;
}

const readJson = async <T>(file: string) => JSON.parse(await readFile(file, "utf8")) as T;

describe("a paid call is never paid again", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let sim: Simulator | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  const run = async (yaml: string, docs: number, simOptions: Parameters<typeof startSimulator>[0], workers = 2) => {
    sim = await startSimulator(simOptions);
    const dir = await jobFolder(docs);
    const file = path.join(dir, "job.yaml");
    await writeFile(file, yaml);
    const out = await mkdtemp(path.join(tmpdir(), "longdoc-paid-once-out-"));
    const env = { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL };
    const r = await runLocalJob({ jobFile: file, outDir: out, settings: loadSettings(env), log: silentLog, stack: loop.stack, workers, timing: { backoffBaseMs: 50, backoffCapMs: 200 } });
    return { ...r, sim };
  };

  it("pays 12 calls for 6 documents × 2 questions under random 429s, and the manifest's cost is what the provider counted", async () => {
    const docs = Array.from({ length: 6 }, (_, i) => `  - path: report-${i + 1}.md`).join("\n");
    const yaml = `name: two-questions\ndocuments:\n${docs}\nquestions:\n  - { id: growth, ask: How much did revenue grow? }\n  - { id: unit, ask: Which unit is this? }\ncalls: per-question\nmaxOutputTokens: 256\n`;
    const r = await run(yaml, 6, { port: 0, faults: "429:0.35,seed=3" });

    expect(r.manifest.counts).toMatchObject({ total: 6, succeeded: 6 });
    const calls = r.sim.calls;
    // The seed refuses some requests (they cost nothing); every question is answered once.
    expect(calls.filter((c) => c.status === 429).length).toBeGreaterThan(0);
    expect(calls.filter((c) => c.outcome === "ok")).toHaveLength(12);
    expect(r.manifest.cost).toBeCloseTo(billed(r.sim, 0), 5); // (the manifest rounds to the millionth)

    // An attempt's number is never reused: each item's attempt records are 1..attempts, and
    // together hold each answered call once.
    for (const item of r.manifest.items) {
      const records = await Promise.all(Array.from({ length: item.attempts }, (_, k) => readJson<AttemptRecord>(path.join(r.outDir, "items", item.id, "attempts", `${k + 1}.json`))));
      expect(records.map((a) => a.attempt)).toEqual(records.map((_, k) => k + 1));
      const answered = records.flatMap((a) => a.calls.filter((c) => c.error === null));
      expect(answered.map((c) => c.label).sort()).toEqual(["growth", "unit"]);
      const result = await readJson<ItemResult>(path.join(r.outDir, "items", item.id, "result.json"));
      expect(result.deliveries).toBeGreaterThanOrEqual(result.attempts);
    }
  });

  it("pays each sample once under 429s", async () => {
    const docs = Array.from({ length: 3 }, (_, i) => `  - path: report-${i + 1}.md`).join("\n");
    const yaml = `name: sampled\ndocuments:\n${docs}\nprompt: Summarise the report.\nsamples: 3\nmaxOutputTokens: 256\n`;
    const r = await run(yaml, 3, { port: 0, faults: "429:0.3,seed=5" });
    expect(r.manifest.counts).toMatchObject({ total: 3, succeeded: 3 });
    expect(r.sim.calls.filter((c) => c.outcome === "ok")).toHaveLength(9);
    expect(r.manifest.cost).toBeCloseTo(billed(r.sim, 0), 5); // (the manifest rounds to the millionth)
  });

  // The worst case of one sample: its answer cap at the output price (the input is small).
  const worstSample = (maxOutputTokens: number) => priceFor(model, { inputTokens: 1_500, outputTokens: maxOutputTokens, cachedTokens: 0 }).cost;

  it("keeps the samples paid before a wait for the cost cap held by calls in flight, and pays only the missing one after it", async () => {
    // The cap holds one sample's worst case and a half: sample 1 runs alone; of samples 2 and 3,
    // started together, one finds the cap held by the other and hands the item back.
    const cap = 1.5 * worstSample(8_000);
    const yaml = `name: ledger-wait\ndocuments:\n  - path: report-1.md\nprompt: Summarise the report.\nsamples: 3\nmaxOutputTokens: 8000\nlimits: { maxCostUsd: ${cap.toFixed(6)} }\n`;
    const r = await run(yaml, 1, { port: 0 }, 1);
    const item = r.manifest.items[0]!;
    expect(item).toMatchObject({ status: "succeeded", samples: 3 });
    // At least one delivery handed the item back to wait for the ledger, with its paid samples kept.
    expect(item.attempts).toBeGreaterThanOrEqual(2);
    expect(r.sim.calls.filter((c) => c.outcome === "ok")).toHaveLength(3);
    expect(r.manifest.cost).toBeCloseTo(billed(r.sim, 0), 5); // (the manifest rounds to the millionth)
  });

  it("answers from the samples already paid when the cap stops the rest: never skipped with paid samples thrown away", async () => {
    // Room for one sample's worst case only: once it is paid, the others would pass the cap.
    const cap = worstSample(8_000) + 1e-6;
    const yaml = `name: tight-cap\ndocuments:\n  - path: report-1.md\nprompt: Summarise the report.\nsamples: 3\nmaxOutputTokens: 8000\nlimits: { maxCostUsd: ${cap.toFixed(6)} }\n`;
    const r = await run(yaml, 1, { port: 0 }, 1);
    const item = r.manifest.items[0]!;
    expect(item.status).toBe("succeeded");
    expect(r.sim.calls.filter((c) => c.outcome === "ok")).toHaveLength(1);
    const result = await readJson<ItemResult>(path.join(r.outDir, "items", item.id, "result.json"));
    expect(result).toMatchObject({ samples: 1, agreementDetail: [{ unsent: 2 }] });
    expect(r.manifest.cost).toBeCloseTo(billed(r.sim, 0), 5); // (the manifest rounds to the millionth)
  });
});
