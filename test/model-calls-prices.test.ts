import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { costCap, getModel, loadCatalog, priceFor, regionOfEndpoint } from "../shared/model/catalog.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { estimateJob } from "../shared/submit/estimate.ts";
import { parseJobText } from "../shared/job/load.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";
import { s3Uri } from "../shared/job/record.ts";
import { submitJob } from "../shared/submit/submit.ts";

const BEIJING = "https://dashscope.aliyuncs.com/compatible-mode/v1";
const SINGAPORE = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";

describe("prices by region: the endpoint picks the region, its currency and its tiers", () => {
  it("reads the region from the endpoint's host", () => {
    const regions = { "ap-southeast-1": { name: "Singapore", hosts: ["dashscope-intl.aliyuncs.com"] }, "cn-beijing": { name: "Beijing", hosts: ["dashscope.aliyuncs.com"] } };
    expect(regionOfEndpoint(SINGAPORE, regions)).toBe("ap-southeast-1");
    expect(regionOfEndpoint(BEIJING, regions)).toBe("cn-beijing");
    expect(regionOfEndpoint("https://ws-123.cn-beijing.maas.aliyuncs.com/compatible-mode/v1", regions)).toBe("cn-beijing");
    expect(regionOfEndpoint("http://127.0.0.1:8080/compatible-mode/v1", regions)).toBeUndefined();
    expect(() => regionOfEndpoint("https://dashscope-us.aliyuncs.com/compatible-mode/v1", regions)).toThrow(/dashscope-us\.aliyuncs\.com is a Model Studio endpoint of a region the model catalog has no prices for/);
    expect(loadSettings({ DASHSCOPE_API_KEY: "sk-x", QWEN_BASE_URL: BEIJING }).catalog).toMatchObject({ region: "cn-beijing", currency: "CNY" });
    expect(loadSettings({ DASHSCOPE_API_KEY: "sk-x" }).catalog).toMatchObject({ region: "ap-southeast-1", currency: "USD" });
    // A simulator standing in for Beijing.
    expect(loadSettings({ QWEN_BASE_URL: "http://127.0.0.1:1/v1", LONGDOC_REGION: "cn-beijing" }).catalog.currency).toBe("CNY");
    expect(() => loadSettings({ LONGDOC_REGION: "eu-central-1" })).toThrow(/LONGDOC_REGION=eu-central-1: region 'eu-central-1' is not in the model catalog/);
  });

  it("prices a Beijing request in CNY at its tier, as worked out by hand from the price table", () => {
    const m = getModel(loadCatalog(undefined, { baseURL: BEIJING }), "qwen3-max");
    expect(m.currency).toBe("CNY");
    // Tier 0-32K: ¥2.5 in, ¥10 out per 1M. 10,000 in + 2,000 out = 0.025 + 0.020.
    expect(priceFor(m, { inputTokens: 10_000, outputTokens: 2_000, cachedTokens: 0 })).toEqual({ tier: "0-32K", tierIndex: 0, cost: 0.045, currency: "CNY", costUsd: null });
    // The boundary is 32,768 tokens (K = 1024): one more is tier 32K-128K, ¥4 per 1M for the whole input.
    expect(priceFor(m, { inputTokens: 32_768, outputTokens: 0, cachedTokens: 0 }).cost).toBeCloseTo(0.08192, 10);
    expect(priceFor(m, { inputTokens: 32_769, outputTokens: 0, cachedTokens: 0 })).toMatchObject({ tier: "32K-128K", cost: 0.131076 });
    // Tier 32K-128K with 40,000 implicit cache hits (20% of ¥4 = ¥0.8): 60,000 × 4 + 40,000 × 0.8 + 5,000 × 16 = ¥0.352.
    expect(priceFor(m, { inputTokens: 100_000, outputTokens: 5_000, cachedTokens: 40_000 }).cost).toBeCloseTo(0.352, 10);
    // Tier 128K-252K: ¥7 in, ¥28 out. 200,000 × 7 + 10,000 × 28 = ¥1.68.
    expect(priceFor(m, { inputTokens: 200_000, outputTokens: 10_000, cachedTokens: 0 })).toMatchObject({ tier: "128K-252K", cost: 1.68 });
    // The same request in Singapore is USD at its own tiers: 200,000 × 3 + 10,000 × 15 = $0.75.
    expect(priceFor(getModel(loadCatalog(undefined, { baseURL: SINGAPORE }), "qwen3-max"), { inputTokens: 200_000, outputTokens: 10_000, cachedTokens: 0 })).toMatchObject({ cost: 0.75, currency: "USD", costUsd: 0.75 });
  });

  it("a USD cap on a CNY endpoint is refused, naming the field to use", () => {
    const beijing = getModel(loadCatalog(undefined, { baseURL: BEIJING }), "qwen3-max");
    expect(() => costCap({ name: "j", limits: { maxCostUsd: 5 } }, beijing)).toThrow("limits.maxCostUsd is in USD, but the endpoint's region (cn-beijing) bills in CNY; set limits.maxCost (in CNY) instead");
    expect(costCap({ name: "j", limits: { maxCost: 30 } }, beijing)).toBe(30);
    expect(costCap({ name: "j", limits: { maxCostUsd: 5 } }, getModel(loadCatalog(), "qwen3-max"))).toBe(5);
  });

  describe("a run and an estimate against a Beijing endpoint", () => {
    const loop = useLoopback({ stack: { visibilityTimeoutS: 1 }, sim: { implicitCacheHitRate: 0 } });
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "longdoc-prices-"));
      await mkdir(path.join(dir, "docs"), { recursive: true });
      await writeFile(path.join(dir, "docs", "memo.md"), "# Memo\n\n" + "Revenue rose 4% in Q3 on pricing; costs fell 2%.\n".repeat(30));
    });

    it("estimate names CNY and prices each item from the Beijing table", async () => {
      const jobFile = path.join(dir, "bj.yaml");
      await writeFile(jobFile, "name: bj\ndocuments:\n  - path: docs/memo.md\nprompt: What rose?\nmaxOutputTokens: 1000\nlimits: { maxCost: 2 }\n");
      const spec = parseJobText("name: bj\ndocuments:\n  - path: docs/memo.md\nprompt: What rose?\nmaxOutputTokens: 1000\nlimits: { maxCost: 2 }\n", jobFile);
      const e = await estimateJob(spec, jobFile, loadSettings({ DASHSCOPE_API_KEY: "sk-x", QWEN_BASE_URL: BEIJING }).catalog);
      const item = e.items[0]!;
      expect(e).toMatchObject({ currency: "CNY", region: "cn-beijing", maxCost: 2, maxCostUsd: null });
      // Input at ¥2.5 per 1M, plus the 1,000-token answer cap at ¥10 per 1M.
      // (estimates are rounded to a millionth)
      expect(item.inputCost).toBeCloseTo((item.inputTokens! * 2.5) / 1e6, 5);
      expect(item.cost).toBeCloseTo((item.inputTokens! * 2.5 + 1000 * 10) / 1e6, 5);
      expect(item.costUsd).toBeNull();
      expect(e.totals).toMatchObject({ cost: item.cost, costUsd: null });
    });

    it("the manifest, the summary and every result name CNY and hold the Beijing price of what was used", async () => {
      const jobFile = path.join(dir, "bj-run.yaml");
      await writeFile(jobFile, "name: bj-run\ndocuments:\n  - path: docs/memo.md\nprompt: What rose?\nlimits: { maxCost: 2 }\n");
      const r = await runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings({ ...loop.env(), LONGDOC_REGION: "cn-beijing" }), log: silentLog, stack: loop.stack, fresh: true });
      const call = loop.sim.calls.at(-1)!;
      const expected = (call.promptTokens * 2.5 + call.completionTokens * 10) / 1e6;
      expect(r.manifest).toMatchObject({ status: "succeeded", currency: "CNY", costUsd: null, cacheSavingsUsd: null });
      // (the manifest rounds to a millionth; result.json keeps the exact figure)
      expect(r.manifest.cost).toBeCloseTo(expected, 5);
      expect(r.manifest.items[0]).toMatchObject({ costUsd: null });
      expect(r.manifest.items[0]!.cost).toBeCloseTo(expected, 5);
      const result = await new ObjectStore(loop.stack.s3, loop.stack.bucket).getJson<ItemResult>(keys.item(r.job.jobId, r.manifest.items[0]!.id, "result.json"));
      expect(result).toMatchObject({ currency: "CNY", costUsd: null });
      expect(result!.cost).toBeCloseTo(expected, 9);
      expect(r.job).toMatchObject({ currency: "CNY", region: "cn-beijing", limits: { maxCost: 2, maxCostUsd: null } });
    });
  
    it("a worker whose endpoint bills in another currency than the job was submitted in halts the job, saying why", async () => {
      const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
      await store.put("inputs/mixed/memo.md", "# Memo\n\nRevenue rose.\n", "text/markdown");
      const spec = parseJobText("name: mixed\ndocuments:\n  - path: x\nprompt: What rose?\n", "mixed.yaml");
      // Submitted against Beijing (CNY)...
      const job = await submitJob(
        { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 3 },
        { spec, model: getModel(loadCatalog(undefined, { baseURL: BEIJING }), "qwen3-max"), documents: [{ source: "memo.md", uri: s3Uri(loop.stack.bucket, "inputs/mixed/memo.md") }], outputSchema: null },
      );
      // ...run by a worker priced for Singapore (USD).
      const before = loop.sim.calls.length;
      await loopbackWorker(loop)(600_000);
      expect(loop.sim.calls.length).toBe(before);
      const result = await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json"));
      expect(result).toMatchObject({ status: "failed", error: { kind: "job_invalid" } });
      expect(result!.error!.message).toContain("the job was priced in CNY (region cn-beijing) when submitted, but this worker's endpoint bills in USD");
      expect(await store.exists(keys.halt(job.jobId))).toBe(true);
    });
  });
});
