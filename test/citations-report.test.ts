// report.html's citation marks in a real headless Chromium (as test/ops-report-browser.test.ts):
// each citation marked held / wrong page / not found in the answer, its page's text on demand,
// and quote text, page text and file names that carry script shown as text, never run.
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument, DomUtils } from "htmlparser2";
import { verifyItemCitations } from "../shared/citations/gate.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { renderReport } from "../shared/run/report.ts";
import type { ReportContent } from "../shared/run/report-content.ts";

const CHROMIUM = process.env.LONGDOC_CHROMIUM ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = Boolean(process.env.CI);

const IMG = "<img src=x onerror=window.__pwned='img'>";
const SCRIPT = "<script>window.__pwned='script'</script>";
const SOURCE = `docs/<svg onload=window.__pwned='svg'>.pdf`;
/** A two-page document whose text carries script, as a PDF's extracted text would. */
const TEXT = `--- page 1 ---\nRevenue was $1,577 million ${IMG} in 2024.\n\n--- page 2 ---\nCosts fell ${SCRIPT} by 3%.\n`;
const ANSWER = [
  `Revenue [p. 1: "Revenue was $1577 million ${IMG}"].`,
  `Costs [p. 1: "Costs fell ${SCRIPT}"].`,
  `Invented [p. 2: "${SCRIPT} profit doubled"].`,
].join("\n\n");

/** report.html of one item whose answer cites the hostile document: held, wrong page, not found. */
function citedReport(): string {
  const cited = verifyItemCitations({ citations: "verify", output: { format: "text" } }, ANSWER, [{ source: SOURCE, text: TEXT }])!;
  expect(cited.citations.list.map((c) => c.status)).toEqual(["supported", "wrong_page", "not_found"]);
  const usage = { inputTokens: 100, outputTokens: 20, reasoningTokens: 0, cachedTokens: 0 };
  const m: Manifest = {
    version: 1, jobId: "j-cite", job: "cite", model: "qwen3-max", status: "succeeded", counts: { total: 1, succeeded: 1, failed: 0, skipped: 0 },
    usage, currency: "USD", cost: 0.001, cacheSavings: 0, costUsd: 0.001, cacheSavingsUsd: 0, startedAt: "2026-12-06T00:00:00.000Z", finishedAt: "2026-12-06T00:01:00.000Z",
    items: [{ id: "a", documents: [SOURCE], status: "succeeded", attempts: 1, error: null, usage, cost: 0.001, cacheSavings: 0, costUsd: 0.001, cacheSavingsUsd: 0, answer: "items/a/answer.md", reasoning: null, citationScore: cited.citations.score }],
  };
  const content: ReportContent = { asked: { prompt: "Revenue?" }, json: false, notInlined: 0, items: new Map([["a", { answer: ANSWER, citations: { result: cited.citations, places: cited.places } }]]) };
  return renderReport(m, content);
}

// Without a browser: the same page parsed as HTML has the marks and no element the quotes or pages wrote.
describe("report.html citation marks, parsed", () => {
  it("marks the three citations with their outcome and keeps every payload as text", () => {
    const dom = parseDocument(citedReport());
    const all = DomUtils.findAll(() => true, dom.children);
    expect(all.filter((e) => ["script", "img", "svg"].includes(e.name) || Object.keys(e.attribs).some((a) => a.startsWith("on")))).toEqual([]);
    const marks = all.filter((e) => e.name === "mark");
    expect(marks.map((e) => e.attribs.class)).toEqual(["cite cite-ok", "cite cite-wrong", "cite cite-missing"]);
    expect(DomUtils.textContent(marks[0]!)).toBe(`[p. 1: "Revenue was $1577 million ${IMG}"]`);
    const entries = all.filter((e) => e.name === "li" && e.attribs.id?.startsWith("cite-a-"));
    expect(entries.map((e) => e.attribs.id)).toEqual(["cite-a-1", "cite-a-2", "cite-a-3"]);
    const pre = DomUtils.findAll((e) => e.name === "pre", [entries[1]!]);
    expect(DomUtils.textContent(pre[0]!)).toBe(`Costs fell ${SCRIPT} by 3%.`);
  });
});

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("report.html citation marks in headless Chromium", () => {
  let context: BrowserContext;
  let dir: string;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI needs Chromium at ${CHROMIUM}: apt-get install chromium`);
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-cite-report-"));
    context = await chromium.launchPersistentContext(path.join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  }, 60_000);
  afterAll(async () => {
    await context?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("marks each citation, shows its page on demand, and runs none of the script its quotes and pages carry", async () => {
    const file = path.join(dir, "report.html");
    await writeFile(file, citedReport());

    const page: Page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.route(/^(?!file:)/, (route) => route.abort());
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
    expect(await page.evaluate(() => (globalThis as { __pwned?: string }).__pwned)).toBeUndefined();
    expect(await page.locator("script, [onerror], [onload], img, svg").count()).toBe(0);
    expect(errors).toEqual([]);

    // In the answer: each citation marked where it is written, with its outcome.
    const marks = page.locator("#item-a .answer mark.cite");
    expect(await marks.count()).toBe(3);
    expect(await marks.evaluateAll((ms) => ms.map((x) => x.className))).toEqual(["cite cite-ok", "cite cite-wrong", "cite cite-missing"]);
    expect(await marks.first().innerText()).toBe(`[p. 1: "Revenue was $1577 million ${IMG}"]`);
    expect(await page.locator("#item-a .answer a.cite-tag").allInnerTexts()).toEqual(["✓ held", "≠ on p. 2", "✗ not found"]);
    // Under it, the list; each entry's page text is folded until asked for.
    const entries = page.locator("#item-a ol.citations > li");
    expect(await entries.count()).toBe(3);
    const wrong = entries.nth(1);
    expect(await wrong.innerText()).toContain(`Costs fell ${SCRIPT}`);
    const pageText = wrong.locator("details");
    expect(await pageText.evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(false);
    expect(await pageText.locator("pre").isVisible()).toBe(false);
    await pageText.locator("summary").click();
    expect(await pageText.locator("pre").isVisible()).toBe(true);
    expect(await pageText.locator("summary").innerText()).toBe("Text of p. 2");
    expect(await pageText.locator("pre").innerText()).toBe(`Costs fell ${SCRIPT} by 3%.`);
    expect(await page.locator("#item-a details.citations > summary").innerText()).toBe("Citations: 1 of 3 held, 1 on another page, 1 not found (score 0.3333)");
    // The marks link to their entries.
    for (const href of await page.locator("a.cite-tag").evaluateAll((as) => as.map((a) => a.getAttribute("href")!))) expect(await page.locator(`[id="${href.slice(1)}"]`).count()).toBe(1);
    // The items table has the score.
    expect(await page.locator("table").first().locator("th").allInnerTexts()).toContain("citations");
    expect(await page.evaluate(() => (globalThis as { __pwned?: string }).__pwned)).toBeUndefined();
    await page.close();
  }, 60_000);
});
