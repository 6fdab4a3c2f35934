// fallbackModel: an item whose prompt does not fit the job's model runs on the fallback instead of
// failing; its result, the manifest and the estimate name the model and price it at its rates.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadJobFile } from "../shared/job/load.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog, priceFor } from "../shared/model/catalog.ts";
import { estimateJob } from "../shared/submit/estimate.ts";
import { loadJobForSubmit } from "../shared/submit/load.ts";
import { loadSettings } from "../shared/settings.ts";
import { useLoopback } from "./helpers/loopback.ts";

describe("fallbackModel", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  let catalogPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-fallback-"));
    // qwen3-max made small, so a few thousand tokens do not fit it; qwen-flash (1M context) does.
    catalogPath = path.join(dir, "catalog.json");
    const tiny = [{ upToInputTokens: 3000, inputPerM: 1.2, outputPerM: 6 }];
    await writeFile(catalogPath, JSON.stringify({ models: { "qwen3-max": { contextTokens: 4000, maxInputTokens: 3000, prices: { "ap-southeast-1": tiny, "cn-beijing": tiny } } } }));
    await writeFile(path.join(dir, "small.md"), "# Small\n\nRevenue rose 4% on pricing.\n");
    await writeFile(path.join(dir, "large.md"), "# Large\n\n" + "Revenue rose in every segment, with volumes, prices and mix all contributing. ".repeat(400));
    await writeFile(path.join(dir, "job.yaml"), "name: fb\ndocuments:\n  - path: \"*.md\"\nprompt: What rose?\nthinking: { enabled: false }\nmaxOutputTokens: 500\nfallbackModel: qwen-flash\n");
  });

  it("runs the oversize item on the fallback, named and priced at its rates, and the others on model", async () => {
    const catalog = loadCatalog(catalogPath);
    // The estimate plans and prices each item on the model it will use.
    const spec = await loadJobFile(path.join(dir, "job.yaml"));
    const estimate = await estimateJob(spec, path.join(dir, "job.yaml"), catalog);
    const large = estimate.items.find((i) => i.documents[0]!.source.endsWith("large.md"))!;
    const small = estimate.items.find((i) => i.documents[0]!.source.endsWith("small.md"))!;
    expect(large).toMatchObject({ model: "qwen-flash", error: null });
    expect(large.inputTokens!).toBeGreaterThan(3000);
    expect(large.inputCost).toBeCloseTo(priceFor(getModel(catalog, "qwen-flash"), { inputTokens: large.inputTokens!, outputTokens: 0, cachedTokens: 0 }).cost, 6);
    expect(small.model).toBeUndefined();

    const before = loop.sim.calls.length;
    const r = await runLocalJob({ jobFile: path.join(dir, "job.yaml"), outDir: path.join(dir, "out"), workers: 1, settings: loadSettings({ ...loop.env(), LONGDOC_CATALOG: catalogPath }), log: silentLog, stack: loop.stack, fresh: true });
    expect(r.manifest.status).toBe("succeeded");
    const byDoc = (name: string) => r.manifest.items.find((i) => JSON.stringify(i.documents).includes(name))!;
    expect(byDoc("large.md").model).toBe("qwen-flash");
    // An item on the job's own model carries no model of its own; the manifest's model is the job's.
    expect(byDoc("small.md").model).toBeUndefined();
    expect(r.manifest.model).toBe("qwen3-max");
    // The endpoint was asked for each item's model.
    const calls = loop.sim.calls.slice(before);
    expect(calls.map((c) => c.model).sort()).toEqual(["qwen-flash", "qwen3-max"]);
    const flashCall = calls.find((c) => c.model === "qwen-flash")!;
    const expected = priceFor(getModel(catalog, "qwen-flash"), { inputTokens: flashCall.promptTokens, outputTokens: flashCall.completionTokens, cachedTokens: flashCall.cachedTokens }).cost;
    const result = JSON.parse(await readFile(path.join(r.outDir, "items", byDoc("large.md").id, "result.json"), "utf8")) as { model: string; cost: number };
    expect(result.model).toBe("qwen-flash");
    expect(result.cost).toBeCloseTo(expected, 9);
  });

  it("refuses a fallbackModel that is unknown or no larger than model", async () => {
    const catalog = loadCatalog();
    await writeFile(path.join(dir, "same.yaml"), "name: same\ndocuments:\n  - path: small.md\nprompt: x\nfallbackModel: qwen3-max-2026-01-23\n");
    await expect(loadJobForSubmit(path.join(dir, "same.yaml"), catalog)).rejects.toThrow(/fallbackModel: qwen3-max-2026-01-23 accepts 258048 input tokens, no more than qwen3-max's 258048/);
    await writeFile(path.join(dir, "unknown.yaml"), "name: unknown\ndocuments:\n  - path: small.md\nprompt: x\nfallbackModel: qwen-huge\n");
    await expect(loadJobForSubmit(path.join(dir, "unknown.yaml"), catalog)).rejects.toThrow(/unknown model 'qwen-huge'/);
  });
});
