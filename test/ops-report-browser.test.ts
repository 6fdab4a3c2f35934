// report.html in a real headless browser (Debian's chromium driven by playwright-core, no browser
// download): it renders answers from Markdown and JSON answers as a table, its links resolve, and
// nothing a document or the model wrote runs as script.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import { flattenAnswer } from "../shared/run/flatten.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { renderReport } from "../shared/run/report.ts";
import type { ReportContent } from "../shared/run/report-content.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

const CHROMIUM = process.env.LONGDOC_CHROMIUM ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = Boolean(process.env.CI);
if (!HAVE_CHROMIUM && !IN_CI) console.warn(`skipping the report.html browser tests: no ${CHROMIUM} (apt-get install chromium)`);

/** Each payload sets window.__pwned if it ever runs. */
const PAYLOADS = ["<script>window.__pwned='script'</script>", "<img src=x onerror=\"window.__pwned='img'\">", "<svg onload=\"window.__pwned='svg'\"></svg>"];

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("report.html in headless Chromium", () => {
  let context: BrowserContext;
  let dir: string;
  let stack: LocalStack;
  let sim: Simulator;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI needs Chromium at ${CHROMIUM} for the report.html browser tests: apt-get install chromium`);
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-report-"));
    context = await chromium.launchPersistentContext(path.join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    [stack, sim] = await Promise.all([startLocalStack(), startSimulator({ port: 0 })]);
  }, 60_000);
  afterAll(async () => {
    await context?.close();
    await sim?.stop();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Opens a file with every network request other than file:// refused, and reports what ran. */
  const open = async (file: string): Promise<{ page: Page; errors: string[] }> => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.route(/^(?!file:)/, (route) => route.abort());
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
    return { page, errors };
  };

  const nothingRan = async (page: Page) => {
    expect(await page.evaluate(() => (globalThis as { __pwned?: string }).__pwned)).toBeUndefined();
    expect(await page.locator("script").count()).toBe(0);
    expect(await page.locator("[onerror], [onload]").count()).toBe(0);
  };

  it("a run whose document name, document text and question carry script: the page shows them as text and runs none", async () => {
    const jobDir = path.join(dir, "job");
    await mkdir(path.join(jobDir, "docs"), { recursive: true });
    const docName = `${PAYLOADS[1]!.replace(/"/g, "")}.md`;
    await writeFile(path.join(jobDir, "docs", docName), `# Memo\n\n${PAYLOADS[0]} Revenue rose.\n`);
    await writeFile(path.join(jobDir, "docs", "plain.md"), "# Plain\n\nCosts fell.\n");
    const jobFile = path.join(jobDir, "job.yaml");
    const question = `Summarise. ${PAYLOADS.join(" ")}`;
    await writeFile(jobFile, `name: pwn\ndocuments:\n  - path: docs/*.md\nquestions:\n  - id: summary\n    ask: ${JSON.stringify(question)}\nthinking: { enabled: true, budget: 256 }\nmaxOutputTokens: 300\n`);
    const run = await runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL }), log: silentLog, stack });
    expect(run.manifest.status).toBe("succeeded");

    const { page, errors } = await open(path.join(run.outDir, "report.html"));
    await nothingRan(page);
    expect(errors).toEqual([]);
    const text = await page.locator("body").innerText();
    // The question as asked, the document's name, and the model's answer quoting the question: all visible as text.
    for (const p of PAYLOADS) expect(text).toContain(p);
    expect(text).toContain(docName);
    // One section per item with its answer; the trace folded (closed) under it.
    expect(await page.locator("section.item").count()).toBe(2);
    expect(await page.locator("section.item .answer").count()).toBe(2);
    const details = page.locator("section.item details");
    expect(await details.count()).toBe(2);
    expect(await details.first().evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(false);
    expect(await details.first().locator("pre").textContent()).toContain("Document 1");

    // Every relative link points at a file of the run.
    const hrefs = await page.locator("a[href]").evaluateAll((as) => as.map((a) => a.getAttribute("href")!));
    const files = hrefs.filter((h) => !h.startsWith("#"));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const h of files) expect(existsSync(path.join(run.outDir, decodeURIComponent(h))), h).toBe(true);
    for (const h of hrefs.filter((x) => x.startsWith("#"))) expect(await page.locator(`[id="${h.slice(1)}"]`).count(), h).toBe(1);
    await page.close();
  }, 90_000);

  it("renders Markdown answers (headings, lists, tables, code) and JSON answers as one table, escaping what they carry", async () => {
    const usage = { inputTokens: 100, outputTokens: 20, reasoningTokens: 0, cachedTokens: 0 };
    const item = (id: string) => ({ id, documents: [`docs/${id}.md`], status: "succeeded" as const, attempts: 1, error: null, usage, cost: 0.001, cacheSavings: 0, costUsd: 0.001, cacheSavingsUsd: 0, answer: `items/${id}/answer.md`, reasoning: null });
    const m: Manifest = {
      version: 1, jobId: "j-md", job: "md", model: "qwen3-max", status: "succeeded", counts: { total: 2, succeeded: 2, failed: 0, skipped: 0 },
      usage, currency: "USD", cost: 0.002, cacheSavings: 0, costUsd: 0.002, cacheSavingsUsd: 0, startedAt: "2026-11-26T00:00:00.000Z", finishedAt: "2026-11-26T00:01:00.000Z",
      items: [item("a"), item("b")],
    };
    const markdown = `## Findings\n\n- **Revenue** rose ${PAYLOADS[0]}\n- Margin *fell*\n\n| metric | value |\n|---|---|\n| debt | ${PAYLOADS[1]} |\n\n\`\`\`\n${PAYLOADS[2]}\n\`\`\`\n\n[evil](javascript:window.__pwned='link') and [ok](https://example.com/x)`;
    const text: ReportContent = { asked: { prompt: "Summarise" }, json: false, notInlined: 0, items: new Map([["a", { answer: markdown }], ["b", { answer: "plain" }]]) };
    const textFile = path.join(dir, "markdown.html");
    await writeFile(textFile, renderReport(m, text));
    const { page, errors } = await open(textFile);
    await nothingRan(page);
    expect(errors).toEqual([]);
    const answer = page.locator("#item-a .answer");
    expect(await answer.locator("h4").innerText()).toBe("Findings");
    expect(await answer.locator("ul > li").count()).toBe(2);
    expect(await answer.locator("li strong").innerText()).toBe("Revenue");
    expect(await answer.locator("table td").nth(1).innerText()).toBe(PAYLOADS[1]);
    expect((await answer.locator("pre code").innerText()).trimEnd()).toBe(PAYLOADS[2]);
    expect(await answer.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")))).toEqual(["https://example.com/x"]);
    expect(await answer.innerText()).toContain("[evil](javascript:window.__pwned='link')");
    await page.close();

    const json: ReportContent = {
      asked: { questions: [{ id: "figures", ask: `Give the figures ${PAYLOADS[0]}` }] },
      json: true,
      notInlined: 0,
      items: new Map([
        ["a", { fields: flattenAnswer({ company: PAYLOADS[1], revenue: 1250.5, segments: ["x", "y"] }) }],
        ["b", { fields: flattenAnswer({ company: "Beta", revenue: 7, extra: { note: "n" } }) }],
      ]),
    };
    const jsonFile = path.join(dir, "json.html");
    await writeFile(jsonFile, renderReport(m, json));
    const j = await open(jsonFile);
    await nothingRan(j.page);
    const table = j.page.locator("table.answers");
    expect(await table.locator("th").allInnerTexts()).toEqual(["item", "status", "company", "revenue", "segments", "extra.note"]);
    expect(await table.locator("tbody tr").first().locator("td").allInnerTexts()).toEqual(["a", "succeeded", PAYLOADS[1]!, "1,250.5", '["x","y"]', ""]);
    expect(await table.locator("tbody tr").nth(1).locator("td").allInnerTexts()).toEqual(["b", "succeeded", "Beta", "7", "", "n"]);
    expect(await j.page.locator("dd.q").innerText()).toBe(`Give the figures ${PAYLOADS[0]}`);
    await j.page.close();
  }, 60_000);
});
