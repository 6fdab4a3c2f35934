import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { getModel, loadCatalog, type ModelInfo } from "../shared/model/catalog.ts";
import { parseJobText } from "../shared/job/load.ts";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { packDocuments } from "../shared/submit/pack.ts";
import { planCall } from "../shared/model/plan.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loadSettings } from "../shared/settings.ts";

/** qwen3-max with a small window, so a handful of small documents needs several packs. */
const SMALL = { models: { "qwen3-max": { contextTokens: 8192, maxInputTokens: 4000, tiers: [{ upToInputTokens: 4000, inputUsdPerM: 1.2, outputUsdPerM: 6 }] } } };

const doc = (i: number, words: number) =>
  `# Filing ${i}\n\n` + Array.from({ length: words }, (_, w) => `item${i}-${w % 97} revenue ${(i * 31 + w) % 1000}`).join(" ") + "\n";

async function smallCatalog(dir: string) {
  const file = path.join(dir, "catalog.json");
  await writeFile(file, JSON.stringify(SMALL));
  return file;
}

describe("packing many small documents into few calls", () => {
  const spec = parseJobText("name: p\ndocuments:\n  - path: x\nprompt: Summarise each filing.\npacking: packed\nmaxOutputTokens: 1024\n", "p.yaml");
  let model: ModelInfo;
  beforeAll(async () => {
    model = getModel(loadCatalog(await smallCatalog(await mkdtemp(path.join(tmpdir(), "longdoc-pack-")))), "qwen3-max");
  });

  it("fits every pack, keeps every document exactly once and in order", () => {
    const docs = Array.from({ length: 12 }, (_, i) => ({ doc: { source: `d${i}.md`, uri: `s3://b/d${i}.md` }, text: doc(i, 60 + ((i * 37) % 200)) }));
    const packs = packDocuments(spec, model, docs);
    expect(packs.length).toBeGreaterThan(1);
    expect(packs.length).toBeLessThan(docs.length);
    expect(packs.flat().map((d) => d.source).sort()).toEqual(docs.map((d) => d.doc.source).sort());
    for (const pack of packs) {
      const texts = pack.map((d) => ({ source: d.source, text: docs.find((x) => x.doc.source === d.source)!.text }));
      expect(planCall(spec, model, texts).inputTokens).toBeLessThanOrEqual(4000);
      const order = pack.map((d) => Number(d.source.slice(1, -3)));
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    // Greedy but not wasteful: no two packs could have been merged.
    const sizes = packs.map((p) => planCall(spec, model, p.map((d) => ({ source: d.source, text: docs.find((x) => x.doc.source === d.source)!.text }))).inputTokens);
    const overhead = planCall(spec, model, []).inputTokens;
    const sorted = [...sizes].sort((a, b) => a - b);
    expect(sorted[0]! + sorted[1]! - overhead).toBeGreaterThan(4000 - 64);
  });

  it("gives a document too big to fit a pack of its own", () => {
    const docs = [
      { doc: { source: "a.md", uri: "s3://b/a.md" }, text: doc(1, 50) },
      { doc: { source: "huge.md", uri: "s3://b/huge.md" }, text: doc(2, 3000) },
      { doc: { source: "c.md", uri: "s3://b/c.md" }, text: doc(3, 50) },
    ];
    const packs = packDocuments(spec, model, docs).map((p) => p.map((d) => d.source));
    expect(packs).toEqual([["a.md", "c.md"], ["huge.md"]]);
  });

  it("fails all-documents clearly when the documents cannot fit together", () => {
    const all = { ...spec, packing: "all-documents" as const };
    const docs = Array.from({ length: 8 }, (_, i) => ({ source: `d${i}.md`, text: doc(i, 200) }));
    expect(() => planCall(all, model, docs)).toThrow(/the prompt is \d+ tokens; qwen3-max accepts at most 4000 input tokens/);
  });
});

describe("a packed job end to end", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });

  it("maps each document's answer back to its document", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-packed-"));
    await mkdir(path.join(dir, "docs"));
    const texts = Array.from({ length: 9 }, (_, i) => doc(i, 80 + ((i * 53) % 150)));
    await Promise.all(texts.map((t, i) => writeFile(path.join(dir, "docs", `f${i}.md`), t)));
    const jobFile = path.join(dir, "job.yaml");
    await writeFile(jobFile, "name: packed-test\ndocuments:\n  - path: docs/*.md\nprompt: Summarise each filing.\npacking: packed\nmaxOutputTokens: 1024\n");
    const env = { ...loop.env(), LONGDOC_CATALOG: await smallCatalog(dir) };
    const run = await runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 2, settings: loadSettings(env), log: silentLog, stack: loop.stack });
    const m = run.manifest;
    expect(m.status).toBe("succeeded");
    expect(m.items.length).toBeGreaterThan(1);
    expect(m.items.length).toBeLessThan(9);
    expect(m.items.every((i) => /^pack-\d{3}$/.test(i.id))).toBe(true);
    const seen: string[] = [];
    for (const item of m.items) {
      const result = JSON.parse(await readFile(path.join(run.outDir, "items", item.id, "result.json"), "utf8")) as ItemResult;
      expect(result.documentAnswers?.map((a) => a.source)).toEqual(item.documents);
      for (const a of result.documentAnswers!) {
        const k = Number(/f(\d+)\.md$/.exec(a.source)![1]);
        const text = await readFile(path.join(run.outDir, a.answer!), "utf8");
        // The section for this document carries that document's own hash: mapped to the right one.
        expect(text).toContain(createHash("sha256").update(texts[k]!).digest("hex"));
        seen.push(a.source);
      }
    }
    expect(new Set(seen).size).toBe(9);
  });
});
