// `run` and `estimate` --limit, --only, --model and --max-cost: a prompt tried on a few items of
// a job without editing the job file; the items keep the ids they have in the whole job, and
// job.json records what the run changed.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { longdoc as cli } from "./helpers/cli.ts";
import { selectItems } from "../shared/submit/select.ts";
import type { JobRecord } from "../shared/job/record.ts";
import type { JobOverrides } from "../shared/submit/select.ts";
import * as api from "../cli/api.ts";

const longdoc = (args: string[]) => cli(args, { DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "" });
const item = (id: string, ...sources: string[]) => ({ id, documents: sources.map((source) => ({ source, uri: `s3://b/${source}` })) });

describe("selecting items", () => {
  const items = [item("001-annual-2023", "reports/annual-2023.md"), item("002-annual-2024", "reports/annual-2024.md"), item("003-memo", "memos/memo.md")];

  it("matches a glob against the item id, the document's path and its file name, then keeps the first N", () => {
    expect(selectItems(items, { only: ["*2024*"] }).map((i) => i.id)).toEqual(["002-annual-2024"]);
    expect(selectItems(items, { only: ["003-memo"] }).map((i) => i.id)).toEqual(["003-memo"]);
    expect(selectItems(items, { only: ["reports/*"] }).map((i) => i.id)).toEqual(["001-annual-2023", "002-annual-2024"]);
    // `*` stays within a folder; `**` crosses folders.
    expect(selectItems(items, { only: ["*/annual-2023.md"] }).map((i) => i.id)).toEqual(["001-annual-2023"]);
    expect(selectItems([item("001-x", "/home/u/job/docs/x.md")], { only: ["docs/x.md"] }).map((i) => i.id)).toEqual(["001-x"]);
    expect(selectItems(items, { only: ["**.md"] })).toHaveLength(3);
    expect(selectItems(items, { only: ["annual-*", "memo.md"], limit: 2 }).map((i) => i.id)).toEqual(["001-annual-2023", "002-annual-2024"]);
    expect(selectItems(items, { limit: 1 }).map((i) => i.id)).toEqual(["001-annual-2023"]);
    // Dots and brackets in a pattern are literal.
    expect(() => selectItems(items, { only: ["memo.m?"] })).not.toThrow();
    expect(() => selectItems(items, { only: ["memoXmd"] })).toThrow(/--only memoXmd: no item matches \(item ids are like 001-annual-2023; documents like reports\/annual-2023\.md/);
  });
});

describe("run and estimate with --limit, --only, --model, --max-cost", () => {
  let dir: string;
  let jobFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-overrides-"));
    await mkdir(path.join(dir, "docs"));
    for (const [name, text] of [["alpha.md", "# Alpha\n\nRevenue 10.\n"], ["beta.md", "# Beta\n\nRevenue 7, debt 2.\n"], ["gamma.md", "# Gamma\n\nRevenue 3.\n"]]) {
      await writeFile(path.join(dir, "docs", name!), text!);
    }
    jobFile = path.join(dir, "job.yaml");
    await writeFile(jobFile, "name: overrides\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nmodel: qwen3-max\nmaxOutputTokens: 256\nlimits: { maxCostUsd: 5 }\n");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // In process through the API (the same code the command runs after parsing its flags), so a
  // loaded machine is not made to start a process per case; the flags themselves are checked below.
  const env = { DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "" };
  const estimate = (o: JobOverrides = {}) => api.estimate(jobFile, { ...o, env });
  const ids = async (o: JobOverrides) => (await estimate(o)).items.map((i) => i.id);

  it("estimate prices only the chosen items, under their ids in the whole job", async () => {
    const all = await estimate();
    expect(all.items.map((i) => i.id)).toEqual(["001-alpha", "002-beta", "003-gamma"]);
    expect((await estimate({ only: ["beta.md"] })).items).toEqual([all.items[1]]);
    expect(await ids({ limit: 2 })).toEqual(["001-alpha", "002-beta"]);
    expect(await ids({ only: ["docs/gamma.md"] })).toEqual(["003-gamma"]);
    expect(await ids({ only: ["0*", "docs/gamma.md"], limit: 2 })).toEqual(["001-alpha", "002-beta"]);
    expect(await estimate({ model: "qwen3-max-2025-09-23", maxCost: 0.25 })).toMatchObject({ model: "qwen3-max-2025-09-23", maxCost: 0.25 });
    // The flags, parsed by the command, give the same; what the run overrides is said on stderr.
    const r = await longdoc(["estimate", jobFile, "--json", "--only", "beta.md", "--only", "nothing", "--model", "qwen3-max-2025-09-23", "--max-cost", "0.25"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(await estimate({ only: ["beta.md", "nothing"], model: "qwen3-max-2025-09-23", maxCost: 0.25 }));
    expect(r.stderr).toContain("this run overrides the job file: model qwen3-max-2025-09-23 (the job file says qwen3-max); cost cap 0.25 (the job file says 5); only items matching beta.md, nothing");
  }, 120_000);

  it("refuses a bad value before anything runs: a usage error (2) or an unknown model (1)", async () => {
    const usage = await longdoc(["estimate", jobFile, "--limit", "0"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--limit");
    const cost = await longdoc(["run", jobFile, "--max-cost", "-1"]);
    expect(cost.code).toBe(2);
    expect(cost.stderr).toContain("--max-cost");
    await expect(api.run(jobFile, { only: ["nothing-like-this"], state: path.join(dir, "s0"), out: path.join(dir, "o0"), env })).rejects.toMatchObject({
      code: "usage",
      message: expect.stringContaining("--only nothing-like-this: no item matches"),
    });
    await expect(estimate({ model: "gpt-9" })).rejects.toMatchObject({ message: expect.stringMatching(/gpt-9/) });
    // The job is checked against the model it will run on: thinking on a model without it.
    const thinking = path.join(dir, "thinking.yaml");
    await writeFile(thinking, "name: thinking\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nthinking: { enabled: true, budget: 1024 }\n");
    await expect(api.estimate(thinking, { model: "qwen3-max-2025-09-23", env })).rejects.toMatchObject({ message: expect.stringMatching(/thinking\.yaml: .*qwen3-max-2025-09-23 has no thinking mode/) });
  }, 120_000);

  it("run --only --limit --model --max-cost: runs those items alone and records in job.json what it changed", async () => {
    const out = path.join(dir, "out");
    const r = await cli(["run", jobFile, "--only", "*.md", "--limit", "2", "--model", "qwen3-max-2026-01-23", "--max-cost", "1", "--workers", "1", "--state", path.join(dir, "state"), "--out", out, "--json"], env, 170_000);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { jobId: string; model: string; counts: { total: number; succeeded: number } };
    expect(summary).toMatchObject({ model: "qwen3-max-2026-01-23", counts: { total: 2, succeeded: 2 } });
    const job = JSON.parse(await readFile(path.join(out, summary.jobId, "job.json"), "utf8")) as JobRecord;
    expect(job.items.map((i) => [i.id, i.documents.map((d) => path.relative(dir, d.source))])).toEqual([["001-alpha", ["docs/alpha.md"]], ["002-beta", ["docs/beta.md"]]]);
    expect(job.overrides).toEqual({ model: { job: "qwen3-max", run: "qwen3-max-2026-01-23" }, maxCost: { job: 5, run: 1 }, limit: 2, only: ["*.md"] });
    expect(job).toMatchObject({ model: "qwen3-max-2026-01-23", limits: { maxCost: 1 } });
    expect(job.spec.model).toBe("qwen3-max-2026-01-23");
  }, 180_000);

  it("a packed job: the packs are made over every document, then chosen", async () => {
    // A small window, so a few documents make several packs.
    const catalog = path.join(dir, "catalog.json");
    await writeFile(catalog, JSON.stringify({ models: { "qwen3-max": { contextTokens: 6_000, maxInputTokens: 4_000, tiers: [{ upToInputTokens: 4_000, inputUsdPerM: 1.2, outputUsdPerM: 6 }] } } }));
    const packedDir = path.join(dir, "packed");
    await mkdir(path.join(packedDir, "docs"), { recursive: true });
    for (let i = 0; i < 6; i++) await writeFile(path.join(packedDir, "docs", `f${i}.md`), `# F${i}\n\n` + `revenue ${i} rose `.repeat(300) + "\n");
    const packed = path.join(packedDir, "job.yaml");
    await writeFile(packed, "name: packed\ndocuments:\n  - path: docs/*.md\nprompt: Summarise each.\npacking: packed\nmaxOutputTokens: 512\n");
    const est = async (o: JobOverrides = {}) => (await api.estimate(packed, { ...o, env: { ...env, LONGDOC_CATALOG: catalog } })).items;
    const all = await est();
    expect(all.length).toBeGreaterThan(2);
    expect(await est({ limit: 1 })).toEqual([all[0]]);
    const last = all.at(-1)!;
    const byDoc = await est({ only: [last.documents[0]!.source.split("/").pop()!] });
    expect(byDoc).toEqual([last]);
  }, 90_000);

  it("a batch file: --only and --limit choose lines by custom_id", async () => {
    const line = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "qwen3-max", messages: [{ role: "user", content: `Question ${id}?` }] } });
    const file = path.join(dir, "requests.jsonl");
    await writeFile(file, ["q-1", "q-2", "r-1", "r-2"].map(line).join("\n") + "\n");
    expect((await api.estimate(file, { only: ["r-*"], limit: 1, env })).items.map((i) => i.id)).toEqual(["r-1"]);
  }, 60_000);
});
