// `citations: verify` end to end on the local stack: emulator, workers, the simulator citing real
// passages of the corpus's Ulta Beauty earnings release (9 pages) and of a one-page memo.
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import { loadSettings } from "../shared/settings.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loadDocument } from "../shared/documents/index.ts";
import { fold } from "../shared/citations/fold.ts";
import { csvOutput } from "../cli/results-csv.ts";
import { renderSummary } from "../cli/commands/run.ts";
import { ObjectStore } from "../shared/run/store.ts";

const PDF = "ULTABEAUTY_2023Q4_EARNINGS.pdf";
const MEMO = "# Board memo\n\nCash rose to $12.4 million at year end, after the plant in Leeds was sold for $3.1 million.\nThe board approved a dividend of 40 cents per share, payable in March.\n";

describe("citations: verify, end to end", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  let pdfPages: Map<number, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-citations-"));
    await mkdir(path.join(dir, "docs"));
    await copyFile(path.join(import.meta.dirname, "corpus", "files", PDF), path.join(dir, "docs", PDF));
    await writeFile(path.join(dir, "docs", "memo.md"), MEMO);
    // The pages as `longdoc extract` prints them, read here without the module under test.
    const text = (await loadDocument({ bytes: new Uint8Array(await readFile(path.join(dir, "docs", PDF))), name: PDF })).text;
    pdfPages = new Map(text.split(/^--- page (\d+) ---$/m).slice(1).reduce<[number, string][]>((acc, v, i, all) => (i % 2 ? acc : [...acc, [Number(v), all[i + 1]!]]), []));
  });

  async function run(name: string, extra: string, opts: { docs?: string; workers?: number } = {}) {
    const jobFile = path.join(dir, `${name}.yaml`);
    await writeFile(
      jobFile,
      `name: ${name}\ndocuments:\n  - path: ${opts.docs ?? "docs/*"}\nquestions:\n  - id: sales\n    ask: What were net sales in the quarter?\nmaxOutputTokens: 2048\ncitations: verify\n${extra}`,
    );
    const r = await runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out", name), workers: opts.workers ?? 1, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack });
    const result = async (id: string) => JSON.parse(await readFile(path.join(r.outDir, "items", id, "result.json"), "utf8")) as ItemResult;
    return { manifest: r.manifest, outDir: r.outDir, result };
  }

  it("checks every cited quote: result.json's citations, the manifest's citationScore and job summary", async () => {
    const callsBefore = loop.sim.calls.length;
    const { manifest, outDir, result } = await run("cite", "");
    expect(manifest.status).toBe("succeeded");
    const [pdfItem, memoItem] = [manifest.items.find((i) => i.documents[0]!.endsWith(PDF))!, manifest.items.find((i) => i.documents[0]!.endsWith("memo.md"))!];
    // The prompt asked for citations, after the question.
    const asked = loop.sim.calls.slice(callsBefore).map((c) => c.question);
    expect(asked.every((q) => /What were net sales[\s\S]*Back every figure and factual claim with a citation/.test(q))).toBe(true);

    const r = await result(pdfItem.id);
    const c = r.citations!;
    expect(c).toMatchObject({ total: 4, supported: 3, wrongPage: 1, notFound: 0, score: 0.75 });
    expect(pdfItem.citationScore).toBe(0.75);
    // Each checked quote is in the answer, and where it says: on its page, or not on the page it names.
    const answer = await readFile(path.join(outDir, pdfItem.answer!), "utf8");
    for (const q of c.list) {
      expect(answer).toContain(`[p. ${q.page}: "${q.quote}"]`);
      expect(q.document).toBe(pdfItem.documents[0]);
      const onPage = fold(pdfPages.get(q.page!)!).includes(fold(q.quote));
      expect(onPage).toBe(q.status === "supported");
      if (q.status === "wrong_page") {
        expect(q.foundOn.length).toBeGreaterThan(0);
        for (const p of q.foundOn) expect(fold(pdfPages.get(p as number)!)).toContain(fold(q.quote));
      }
    }
    // A document without pages: plain quotes, all found.
    const m = (await result(memoItem.id)).citations!;
    expect(m).toMatchObject({ total: 4, supported: 4, score: 1 });
    expect(m.list.every((q) => q.page === null && q.sheet === null && MEMO.includes(q.quote))).toBe(true);
    expect(manifest.citations).toEqual({ items: 2, total: 8, supported: 7, wrongPage: 1, notFound: 0, score: 0.875, lowestItemScore: 0.75, ungrounded: 0 });
    const onDisk = JSON.parse(await readFile(path.join(outDir, "manifest.json"), "utf8")) as Manifest;
    expect(onDisk.citations).toEqual(manifest.citations);
    // report.html marks each citation in the answers and carries the cited pages' text.
    const report = await readFile(path.join(outDir, "report.html"), "utf8");
    expect(report.match(/<mark class="cite cite-ok"/g)?.length).toBe(7);
    expect(report.match(/<mark class="cite cite-wrong"/g)?.length).toBe(1);
    const pages = JSON.parse(await readFile(path.join(outDir, "items", pdfItem.id, "cited-pages.json"), "utf8")) as { places: { page: number; text: string }[] };
    for (const q of c.list) {
      const shown = q.status === "wrong_page" ? (q.foundOn[0] as number) : q.page!;
      expect(fold(pages.places.find((p) => p.page === shown)!.text)).toContain(fold(q.quote));
    }
    // Where people look: the run's summary table and results --format csv.
    const table = renderSummary(manifest);
    expect(table).toMatch(/citations/);
    expect(table).toContain("0.75");
    expect(table).toContain("7 of 8 quote(s) found on the page or sheet cited, 1 only on another, 0 nowhere");
    const csv = await csvOutput(new ObjectStore(loop.stack.s3, loop.stack.bucket), manifest.jobId);
    const column = csv.header.indexOf("citation_score");
    expect(column).toBe(csv.header.indexOf("answer_path") + 1);
    expect(csv.rows.map((r) => r[column])).toEqual(manifest.items.map((i) => i.citationScore));
  });

  it("fails an item below minCitationScore as ungrounded, keeping its answer and citations", async () => {
    const { manifest, outDir, result } = await run("cite-gate", "minCitationScore: 0.9\n");
    expect(manifest.status).toBe("partial");
    const pdfItem = manifest.items.find((i) => i.documents[0]!.endsWith(PDF))!;
    const memoItem = manifest.items.find((i) => i.documents[0]!.endsWith("memo.md"))!;
    expect(pdfItem).toMatchObject({ status: "failed", citationScore: 0.75, error: { kind: "ungrounded", message: expect.stringContaining("citation score 0.75 is below minCitationScore 0.9") } });
    expect(memoItem).toMatchObject({ status: "succeeded", citationScore: 1, error: null });
    const r = await result(pdfItem.id);
    expect(r.citations).toMatchObject({ total: 4, wrongPage: 1 });
    expect(r.answer).toBe(`items/${pdfItem.id}/answer.md`);
    expect(await readFile(path.join(outDir, r.answer!), "utf8")).toContain('[p. ');
    expect(manifest.citations).toMatchObject({ items: 2, ungrounded: 1 });
  });

  it("finds invented quotes nowhere (the simulator's citations fault)", async () => {
    loop.sim.injectFaults({ kind: "citations", count: 1 });
    const { manifest, result } = await run("cite-invented", "", { docs: `docs/${PDF}`, workers: 1 });
    const item = manifest.items[0]!;
    const c = (await result(item.id)).citations!;
    expect(c).toMatchObject({ total: 4, supported: 1, wrongPage: 1, notFound: 2, score: 0.25 });
    expect(c.list.filter((q) => q.status === "not_found").every((q) => q.quote.startsWith("the simulator invented"))).toBe(true);
    expect(item.citationScore).toBe(0.25);
  });

  it("checks the citations array of JSON answers", async () => {
    const schema = {
      type: "object",
      properties: {
        netSales: { type: "number" },
        citations: { type: "array", items: { type: "object", properties: { page: { type: "integer" }, quote: { type: "string" } }, required: ["page", "quote"], additionalProperties: false } },
      },
      required: ["netSales", "citations"],
      additionalProperties: false,
    };
    const { manifest, outDir, result } = await run("cite-json", `output: { format: json, schema: ${JSON.stringify(schema)} }\n`, { docs: `docs/${PDF}`, workers: 1 });
    expect(manifest.status).toBe("succeeded");
    const item = manifest.items[0]!;
    const answer = JSON.parse(await readFile(path.join(outDir, item.answer!), "utf8")) as { citations: { page: number; quote: string }[] };
    expect(answer.citations).toHaveLength(4);
    const c = (await result(item.id)).citations!;
    expect(c.list.map((q) => [q.page, q.quote])).toEqual(answer.citations.map((q) => [q.page, q.quote]));
    expect(c).toMatchObject({ total: 4, supported: 3, wrongPage: 1, score: 0.75 });
  });
});
