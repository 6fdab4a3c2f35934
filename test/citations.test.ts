// Citation checking (`citations: verify`) on real documents of the corpus: Ulta Beauty's earnings
// release (a 9-page PDF from SEC EDGAR) and Nestlé's half-year segment workbook (5 sheets).
import { copyFile, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadDocument } from "../shared/documents/index.ts";
import { citationInstruction, fold, parseCitations, splitPlaces, verifyCitations, type CitedDocument } from "../shared/citations/index.ts";
import { planCall } from "../shared/model/plan.ts";
import { summariseCitations, verifyItemCitations } from "../shared/citations/gate.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { jobSpecSchema } from "../shared/job/schema.ts";
import { countChatTokens } from "../shared/tokens/index.ts";
import { messageText } from "../shared/model/prompt.ts";
import { estimateJob } from "../shared/submit/estimate.ts";
import { renderEstimate } from "../cli/commands/estimate.ts";

const CORPUS = path.join(import.meta.dirname, "corpus", "files");
const PDF = "ULTABEAUTY_2023Q4_EARNINGS.pdf";
const XLSX = "nestle-2023-half-year-analyses-by-segment.xlsx";

async function load(file: string): Promise<CitedDocument> {
  const bytes = await readFile(path.join(CORPUS, file));
  const doc = await loadDocument({ bytes: new Uint8Array(bytes), name: file });
  return { source: `docs/${file}`, text: doc.text };
}

let pdf: CitedDocument;
let xlsx: CitedDocument;
beforeAll(async () => {
  [pdf, xlsx] = await Promise.all([load(PDF), load(XLSX)]);
});

describe("places: the split the model is asked to cite", () => {
  it("splits a PDF at its page markers and a workbook at its sheet headings", () => {
    const pages = splitPlaces(pdf.text);
    expect(pages.kind).toBe("pages");
    expect(pages.places.map((p) => p.label)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(pages.places[6]!.text).toContain("Cash and cash equivalents  $  737,877");
    expect(pages.places.some((p) => p.text.includes("--- page"))).toBe(false);
    const sheets = splitPlaces(xlsx.text);
    expect(sheets.kind).toBe("sheets");
    expect(sheets.places.map((p) => p.label)).toEqual([
      "OS-Rev.and results 30 06 2023",
      "OS-Other information 30 06 2023",
      "Prod.Rev.and results 30 06 2023",
      "Prod.-Other inform. 30 06 23",
      "Reconciliation 30 06 2023",
    ]);
    expect(splitPlaces("# memo\n\nCash rose.\n")).toEqual({ kind: "none", places: [{ label: null, text: "# memo\n\nCash rose.\n" }] });
  });
});

describe("fold", () => {
  it("folds whitespace, case, quote marks, dashes, thousands separators, ligatures and cell borders alike", () => {
    expect(fold("Net  Sales\nof $ 3,226.8")).toBe(fold("net sales of $3226.8"));
    expect(fold("(“fourth quarter”)")).toBe(fold('("Fourth Quarter")'));
    expect(fold("fifty-two-week")).toBe(fold("fifty–two—week"));
    expect(fold("1'577 and 1 577 and 1,577")).toBe(fold("1577 and 1577 and 1577"));
    expect(fold("ﬁscal")).toBe("fiscal");
    expect(fold("| 9 | Zone NA | 12553 |")).toBe(fold("9 Zone NA 12,553"));
    expect(fold("Trading<br>operating profit")).toBe(fold("trading operating profit"));
    // A comma before a group that is not three digits is not a thousands separator.
    expect(fold("2018, 2017")).not.toBe(fold("20182017"));
  });
});

describe("parse: the contract's markup, read as models write it", () => {
  it("reads page, sheet, plain and named citations, and leaves other brackets alone", () => {
    const text =
      'Sales rose [p. 3, "net sales rose"] and [page 4 "gross profit"], the zone [sheet Zone NA: "12553"], the memo ["cash rose"].\n' +
      'Across files: [report.pdf p. 12: “curly quote”] [My Book.xlsx sheet Revenue: "x"] [memo.md: "y"]. Not citations: [1], [see "here"], [a](b).';
    expect(parseCitations(text, ["docs/My Book.xlsx"]).map(({ offset: _o, raw: _r, ...c }) => c)).toEqual([
      { quote: "net sales rose", document: null, page: 3, sheet: null },
      { quote: "gross profit", document: null, page: 4, sheet: null },
      { quote: "12553", document: null, page: null, sheet: "Zone NA" },
      { quote: "cash rose", document: null, page: null, sheet: null },
      { quote: "curly quote", document: "report.pdf", page: 12, sheet: null },
      { quote: "x", document: "My Book.xlsx", page: null, sheet: "Revenue" },
      { quote: "y", document: "memo.md", page: null, sheet: null },
    ]);
  });

  it("keeps quote marks inside a quote", () => {
    expect(parseCitations('[p. 1: "thirteen-week period ("fourth quarter")"]')[0]!.quote).toBe('thirteen-week period ("fourth quarter")');
  });
});

describe("verifyCitations on a real PDF", () => {
  it("holds, holds only after folding, points to the wrong page, or quotes what the document lacks", () => {
    const answer = [
      'Net sales grew 18.2% [p. 1: "Net sales increased 18.2% to $3.2 billion compared to $2.7 billion"].',
      // Case, straight quotes for curly ones, an en dash, no thousands separator, one space for many.
      'The year [p. 1: "FIFTY–TWO-WEEK PERIOD ("fiscal year") ended January 28, 2023"] closed with cash [p. 7: "cash and cash equivalents $737877 $431560"].',
      'Gross profit [p. 4: "Gross profit increased 18.0% to $1.2 billion"] (it is on page 2).',
      'Invented [p. 1: "Net sales decreased 3% to $1.1 billion"].',
    ].join("\n");
    const r = verifyCitations(answer, [pdf]);
    expect(r.list.map((c) => [c.page, c.status, c.foundOn])).toEqual([
      [1, "supported", []],
      [1, "supported", []],
      [7, "supported", []],
      [4, "wrong_page", [2]],
      [1, "not_found", []],
    ]);
    expect(r.list.every((c) => c.document === `docs/${PDF}`)).toBe(true);
    expect(r).toMatchObject({ total: 5, supported: 3, wrongPage: 1, notFound: 1, score: 0.6 });
  });

  it("accepts a quote that runs over a page break, and an ellipsis between its pieces", () => {
    const pages = splitPlaces(pdf.text).places;
    const tail = pages[0]!.text.trim().split("\n").at(-1)!.slice(-30);
    const head = pages[1]!.text.trim().split("\n")[0]!.slice(0, 30);
    const r = verifyCitations(`[p. 1: "${tail} ${head}"] and [p. 1: "Net sales increased 18.2% ... compared to $2.7 billion"]`, [pdf]);
    expect(r.list.map((c) => c.status)).toEqual(["supported", "supported"]);
    // Pieces in the wrong order are not the passage.
    expect(verifyCitations('[p. 1: "chief executive officer ... BOLINGBROOK, Ill."]', [pdf]).list[0]!.status).not.toBe("supported");
  });

  it("stays fast on a quote whose first piece is everywhere (about 1 MB of text)", () => {
    const text = Array.from({ length: 300 }, (_, i) => `--- page ${i + 1} ---\n${"the figure the year the company ".repeat(110)}\n`).join("\n");
    expect(text.length).toBeGreaterThan(1_000_000);
    const t0 = performance.now();
    const r = verifyCitations('[p. 3: "the ... zebra"] [p. 9: "the figure ... the company"]', [{ source: "big.pdf", text }]);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.list.map((c) => c.status)).toEqual(["not_found", "supported"]);
  });

  it("scores 0 when an answer asked to cite cites nothing", () => {
    expect(verifyCitations("Net sales rose 18.2% to $3.2 billion.", [pdf])).toEqual({ total: 0, supported: 0, wrongPage: 0, notFound: 0, score: 0, list: [] });
  });
});

describe("verifyCitations on a workbook and over several documents", () => {
  it("checks sheet citations, the sheet's name as the heading shows it", () => {
    const r = verifyCitations(
      'Zone NA sold 12,553 [sheet OS-Rev.and results 30 06 2023: "Zone NA | 12,553 | 2,713"]; the same row [sheet Reconciliation 30 06 2023: "Zone NA | 12553 | 2713"]; made up [sheet OS-Rev.and results 30 06 2023: "Zone Mars | 99999"].',
      [xlsx],
    );
    expect(r.list.map((c) => [c.sheet, c.status, c.foundOn])).toEqual([
      ["OS-Rev.and results 30 06 2023", "supported", []],
      ["Reconciliation 30 06 2023", "wrong_page", ["OS-Rev.and results 30 06 2023"]],
      ["OS-Rev.and results 30 06 2023", "not_found", []],
    ]);
  });

  it("reads the file name first, and looks for an unnamed quote in every document of the call", () => {
    const docs = [pdf, xlsx, { source: "notes/memo.md", text: "# Memo\n\nCash rose to $12.4 million.\n" }];
    const r = verifyCitations(
      [
        `[${PDF} p. 7: "Merchandise inventories, net 1,603,451"]`,
        `[${XLSX} sheet OS-Rev.and results 30 06 2023: "Nespresso | 3128"]`,
        '[memo.md: "cash rose to $12.4 million"]',
        `[${PDF} p. 2: "Nespresso | 3128"]`,
        '[p. 7: "Receivables, net 199,422"]',
      ].join(" "),
      docs,
    );
    expect(r.list.map((c) => [c.document, c.status])).toEqual([
      [`docs/${PDF}`, "supported"],
      [`docs/${XLSX}`, "supported"],
      ["notes/memo.md", "supported"],
      // Named the PDF, but the quote is the workbook's: not in the document it names.
      [`docs/${PDF}`, "not_found"],
      [`docs/${PDF}`, "supported"],
    ]);
  });

  it("checks JSON answers: markup in string values and { page, quote } objects", () => {
    const answer = JSON.stringify({
      summary: 'Net sales rose [p. 1: "Net sales increased 18.2%"].',
      figures: [{ name: "cash", value: 737.9 }],
      citations: [
        { page: 7, quote: "Cash and cash equivalents $ 737,877" },
        { page: "3", quote: "Cash and cash equivalents $ 737,877" },
        { quote: "not in the filing at all" },
      ],
    });
    const r = verifyCitations(answer, [pdf], { format: "json" });
    expect(r.list.map((c) => [c.page, c.status])).toEqual([
      [1, "supported"],
      [7, "supported"],
      [3, "wrong_page"],
      [null, "not_found"],
    ]);
  });
});

describe("the minCitationScore gate", () => {
  const spec = (min?: number) => ({ citations: "verify" as const, minCitationScore: min, output: { format: "text" as const } });

  it("fails an answer below the minimum as ungrounded, with its counts, and passes one at or above it", () => {
    const answer = '[p. 1: "Net sales increased 18.2%"] [p. 4: "Gross profit increased 18.0%"]';
    const low = verifyItemCitations(spec(0.9), answer, [pdf])!;
    expect(low.citations).toMatchObject({ total: 2, supported: 1, wrongPage: 1, score: 0.5 });
    expect(low.ungrounded).toEqual({ kind: "ungrounded", message: expect.stringMatching(/^citation score 0\.5 is below minCitationScore 0\.9: of 2 quote\(s\), 1 found on the page or sheet cited, 1 only elsewhere in the document, 0 nowhere in it/) });
    expect(verifyItemCitations(spec(0.5), answer, [pdf])!.ungrounded).toBeNull();
    expect(verifyItemCitations(spec(), answer, [pdf])!.ungrounded).toBeNull();
    // Off: nothing is checked.
    expect(verifyItemCitations({ output: { format: "text" } }, answer, [pdf])).toBeNull();
  });

  it("fails an answer that cites nothing, saying so", () => {
    const none = verifyItemCitations(spec(0.1), "Net sales rose 18.2%.", [pdf])!;
    expect(none.citations.score).toBe(0);
    expect(none.ungrounded?.message).toMatch(/^the answer cites nothing/);
  });

  it("keeps the text of each page a reader needs, and sums a job's citations", () => {
    const r = verifyItemCitations(spec(), '[p. 1: "Net sales increased 18.2%"] [p. 4: "Gross profit increased 18.0%"] [p. 4: "no such text"]', [pdf])!;
    expect(r.places.map((p) => p.page)).toEqual([1, 2, 4]);
    expect(r.places[1]!.text).toContain("Gross profit increased 18.0%");
    expect(summariseCitations([{ citations: r.citations, ungrounded: true }, { citations: verifyItemCitations(spec(), "", [pdf])!.citations, ungrounded: true }])).toEqual({
      items: 2, total: 3, supported: 1, wrongPage: 1, notFound: 1, score: 0.3333, lowestItemScore: 0, ungrounded: 2,
    });
  });
});

describe("the citation instruction in the prompt", () => {
  const model = getModel(loadCatalog(), "qwen3-max");
  const job = (extra: Record<string, unknown> = {}) =>
    jobSpecSchema.parse({ name: "cite", documents: [{ path: "x" }], prompt: "What were net sales?", ...extra });

  it("follows the documents, leaves the cached prefix as it was, and counts exactly what it adds", () => {
    const docs = [{ source: `docs/${PDF}`, text: pdf.text }];
    const off = planCall(job(), model, docs);
    const on = planCall(job({ citations: "verify" }), model, docs);
    expect(on.prefixTokens).toBe(off.prefixTokens);
    const user = (p: typeof on) => messageText(p.messages[1]!);
    const instruction = citationInstruction(docs);
    expect(user(on)).toBe(`${user(off)}\n\n${instruction}`);
    expect(instruction).toContain('[p. N: "exact quote"]');
    expect(instruction).not.toContain("sheet");
    // Exact: the same as counting both whole prompts.
    const whole = (p: typeof on) => countChatTokens(p.messages.map((m) => ({ role: m.role, content: messageText(m) })));
    expect(on.citationTokens).toBe(whole(on) - whole(off));
    expect(on.inputTokens - off.inputTokens).toBe(on.citationTokens);
    expect(on.citationTokens).toBeGreaterThan(40);
    expect(on.citationTokens).toBeLessThan(200);
    expect(off.citationTokens).toBe(0);
  });

  it("asks for the file name first over several documents, with only the forms their kinds need", () => {
    const text = citationInstruction([
      { source: `docs/${PDF}`, text: pdf.text },
      { source: `docs/${XLSX}`, text: xlsx.text },
    ]);
    expect(text).toContain(`[${PDF} p. N: "exact quote"]`);
    expect(text).toContain(`[${XLSX} sheet NAME: "exact quote"]`);
    expect(text).not.toContain("without pages");
    expect(text).toContain("file name");
    expect(text.split("Example:").length).toBe(2);
  });

  it("refuses minCitationScore without citations: verify", () => {
    const r = jobSpecSchema.safeParse({ name: "x", documents: [{ path: "x" }], prompt: "p", minCitationScore: 0.9 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]).toMatchObject({ path: ["minCitationScore"], message: expect.stringContaining("citations: verify") });
    expect(job().citations).toBe("off");
  });

  it("is priced by estimate, which says what it adds to each prompt", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-cite-estimate-"));
    await copyFile(path.join(CORPUS, PDF), path.join(dir, PDF));
    const estimate = async (extra: string) => {
      const file = path.join(dir, "job.yaml");
      await writeFile(file, `name: cite\ndocuments:\n  - path: "*.pdf"\nprompt: What were net sales?\n${extra}`);
      return estimateJob(jobSpecSchema.parse((await import("yaml")).parse(await readFile(file, "utf8"))), file, loadCatalog());
    };
    const [off, on] = [await estimate(""), await estimate("citations: verify\n")];
    const added = on.items[0]!.citationTokens!;
    expect(added).toBeGreaterThan(40);
    expect(on.items[0]!.inputTokens! - off.items[0]!.inputTokens!).toBe(added);
    expect(off.items[0]!.citationTokens).toBeUndefined();
    expect(renderEstimate(on)).toContain(`citations: verify adds ${added} tokens to each prompt`);
  });
});
