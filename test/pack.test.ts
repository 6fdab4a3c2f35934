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
import { blockTokenBound, packDocuments } from "../shared/submit/pack.ts";
import { loadDocument } from "../shared/documents/index.ts";
import { planCall } from "../shared/model/plan.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loadSettings } from "../shared/settings.ts";

/** qwen3-max with a small window, so a handful of small documents needs several packs. */
const SMALL = { models: { "qwen3-max": { contextTokens: 48_000, maxInputTokens: 40_000, tiers: [{ upToInputTokens: 40_000, inputUsdPerM: 1.2, outputUsdPerM: 6 }] } } };
const LIMIT = SMALL.models["qwen3-max"].maxInputTokens;

const doc = (i: number, words: number) =>
  `# Filing ${i}\n\n` + Array.from({ length: words }, (_, w) => `item${i}-${w % 97} revenue ${(i * 31 + w) % 1000}`).join(" ") + "\n";

async function smallCatalog(dir: string) {
  const file = path.join(dir, "catalog.json");
  await writeFile(file, JSON.stringify(SMALL));
  return file;
}

/** A listed document: its name, URI and size, as submit sees it (no contents). */
const listed = (source: string, text: string | Uint8Array) => ({ source, uri: `s3://b/${source}`, bytes: typeof text === "string" ? Buffer.byteLength(text) : text.byteLength });

describe("packing many small documents into few calls, from their sizes alone", () => {
  const spec = parseJobText("name: p\ndocuments:\n  - path: x\nprompt: Summarise each filing.\npacking: packed\nmaxOutputTokens: 1024\n", "p.yaml");
  let model: ModelInfo;
  beforeAll(async () => {
    model = getModel(loadCatalog(await smallCatalog(await mkdtemp(path.join(tmpdir(), "longdoc-pack-")))), "qwen3-max");
  });

  it("fits every pack when counted exactly, keeps every document once and in order, and leaves no two packs mergeable", () => {
    const texts = Array.from({ length: 12 }, (_, i) => doc(i, 60 + ((i * 37) % 200)));
    const docs = texts.map((t, i) => listed(`d${i}.md`, t));
    const packs = packDocuments(spec, model, docs);
    expect(packs.length).toBeGreaterThan(1);
    expect(packs.length).toBeLessThan(docs.length);
    expect(packs.flat().map((d) => d.source).sort()).toEqual(docs.map((d) => d.source).sort());
    const textOf = (source: string) => texts[Number(source.slice(1, -3))]!;
    for (const pack of packs) {
      expect(planCall(spec, model, pack.map((d) => ({ source: d.source, text: textOf(d.source) }))).inputTokens).toBeLessThanOrEqual(LIMIT);
      const order = pack.map((d) => Number(d.source.slice(1, -3)));
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    // Greedy but not wasteful: by the bound, no two packs could have been one.
    const overhead = planCall({ ...spec, truncate: "none" }, model, []).inputTokens;
    const capacity = Math.min(LIMIT, 48_000 - 1024) - overhead;
    const bounds = packs.map((p) => p.reduce((n, d) => n + blockTokenBound(d)!, 0)).sort((a, b) => a - b);
    expect(bounds[0]! + bounds[1]!).toBeGreaterThan(capacity);
  });

  it("sends alone what its size cannot bound (PDF, CSV, HTML, no size) and what is too big", () => {
    const small = "# Note\n\nRevenue rose.\n";
    const docs = [
      listed("a.md", small),
      listed("report.pdf", new Uint8Array(300)),
      listed("table.csv", new Uint8Array(300)),
      listed("page.html", new Uint8Array(300)),
      { source: "unsized.md", uri: "s3://b/unsized.md" },
      listed("huge.md", new Uint8Array(20_000)),
      listed("c.txt", small),
    ];
    const packs = packDocuments(spec, model, docs).map((p) => p.map((d) => d.source));
    expect(packs).toEqual([["a.md", "c.txt"], ["report.pdf"], ["table.csv"], ["page.html"], ["unsized.md"], ["huge.md"]]);
  });

  it("holds the bound on the worst encoding: Windows-1252 euro signs, three bytes of UTF-8 each", async () => {
    // 0x80 is the euro sign in Windows-1252: one byte on disk, three once decoded. (A file of
    // nothing but euro signs says too little for the detector: its job would state the encoding.)
    const euros = (n: number) => new Uint8Array(Array.from({ length: n }, (_, i) => (i % 7 === 6 ? 0x20 : 0x80)));
    const files = Array.from({ length: 6 }, (_, i) => ({ source: `e${i}.txt`, bytes: euros(1500 + i * 700) }));
    const packs = packDocuments(spec, model, files.map((f) => listed(f.source, f.bytes)));
    expect(packs.length).toBeLessThan(files.length);
    for (const pack of packs) {
      const texts = await Promise.all(pack.map(async (d) => ({ source: d.source, text: (await loadDocument({ bytes: files.find((f) => f.source === d.source)!.bytes, name: d.source }, { encoding: "windows-1252" })).text })));
      expect(texts.some((t) => t.text.includes("€"))).toBe(true);
      expect(planCall(spec, model, texts).inputTokens).toBeLessThanOrEqual(LIMIT);
    }
  });

  it("fails all-documents clearly when the documents cannot fit together", () => {
    const all = { ...spec, packing: "all-documents" as const };
    const docs = Array.from({ length: 60 }, (_, i) => ({ source: `d${i}.md`, text: doc(i, 200) }));
    expect(() => planCall(all, model, docs)).toThrow(/the prompt is \d+ tokens; qwen3-max accepts at most 40000 input tokens/);
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
    await writeFile(jobFile, "name: packed-test\ndocuments:\n  - path: docs/*.md\nprompt: Summarise each filing.\npacking: packed\nmaxOutputTokens: 4096\n");
    const env = { ...loop.env(), LONGDOC_CATALOG: await smallCatalog(dir) };
    const run = await runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(env), log: silentLog, stack: loop.stack });
    const m = run.manifest;
    expect(m.items.filter((i) => i.status !== "succeeded").map((i) => i.error)).toEqual([]);
    expect(m.status).toBe("succeeded");
    expect(m.items.length).toBeGreaterThan(1);
    expect(m.items.length).toBeLessThan(9);
    expect(m.items.every((i) => /^pack-\d{3}$/.test(i.id))).toBe(true);
    const seen: string[] = [];
    for (const item of m.items) {
      const result = JSON.parse(await readFile(path.join(run.outDir, "items", item.id, "result.json"), "utf8")) as ItemResult;
      // A pack of one is an ordinary item: its answer is the document's.
      const answers = item.documents.length === 1 ? [{ source: item.documents[0]!, answer: `items/${item.id}/answer.md` }] : result.documentAnswers!;
      expect(answers.map((a) => a.source)).toEqual(item.documents);
      for (const a of answers) {
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
