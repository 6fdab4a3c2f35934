/**
 * Document loaders against the real corpus in test/corpus (MANIFEST.json is the ground
 * truth, computed with poppler, openpyxl and Python's csv/html parsers, never with this code).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadDocument, type LoadedDocument } from "../shared/documents/index.ts";
import { columnLetters } from "../shared/documents/xlsx.ts";
import { LongdocError } from "../shared/errors.ts";

const CORPUS = new URL("./corpus/", import.meta.url);

interface Probe {
  text: string;
  page?: number;
  occurrences?: number;
}
interface Entry {
  path: string;
  format: string;
  bytes: number;
  expect: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  groundTruth: any;
  questions?: { evidence: { page: number; anchor: string }[] }[];
}

const manifest = JSON.parse(readFileSync(new URL("MANIFEST.json", CORPUS), "utf8")) as { files: Entry[] };
const byName = new Map(manifest.files.map((f) => [f.path.replace(/^files\//, ""), f]));
const entry = (name: string): Entry => {
  const e = byName.get(name);
  if (!e) throw new Error(`not in the manifest: ${name}`);
  return e;
};

// Each corpus file is loaded once and shared by the tests that look at it.
const cache = new Map<string, Promise<LoadedDocument>>();
function load(name: string): Promise<LoadedDocument> {
  let p = cache.get(name);
  if (!p) {
    const bytes = new Uint8Array(readFileSync(new URL(`files/${name}`, CORPUS)));
    p = loadDocument({ bytes, name });
    p.catch(() => {}); // observed by the test that awaits it
    cache.set(name, p);
  }
  return p;
}

async function loadError(name: string): Promise<LongdocError> {
  try {
    await load(name);
  } catch (e) {
    if (LongdocError.is(e)) return e;
    throw e;
  }
  throw new Error(`${name} loaded without an error`);
}

const norm = (s: string) => s.replace(/\s+/g, " ").trim();
const nonWs = (s: string) => s.replace(/\s/g, "").length;
/** Text without the Markdown decorations we add (table pipes and rules, heading marks, Title line). */
function plain(text: string): string {
  return text
    .replace(/^Title: .*\n/, "")
    .replace(/^\|(---\|)+$/gm, "")
    .replace(/\\\|/g, "\u0000")
    .replace(/\|/g, " ")
    .replace(/\u0000/g, "|")
    .replace(/<br>/g, " ")
    .replace(/^#{1,6} /gm, "")
    .replace(/^ *(- |\d+\. )/gm, "");
}
const occurrences = (hay: string, needle: string) => hay.split(needle).length - 1;

/** Page texts keyed by page number, from the `--- page N ---` markers. */
function splitPages(text: string): { numbers: number[]; pages: Map<number, string> } {
  const parts = text.split(/^--- page (\d+) ---$/m);
  const numbers: number[] = [];
  const pages = new Map<number, string>();
  for (let i = 1; i < parts.length; i += 2) {
    const n = Number(parts[i]);
    numbers.push(n);
    pages.set(n, parts[i + 1] ?? "");
  }
  return { numbers, pages };
}

/** Parse our Markdown table rows back into cells (escaped pipes kept). */
function tableRows(block: string): string[][] {
  return block
    .split("\n")
    .filter((l) => l.startsWith("|") && !/^\|(---\|)+$/.test(l))
    .map((l) =>
      l
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
}

const names = (format: string, expect: string) => manifest.files.filter((f) => f.format === format && f.expect === expect).map((f) => f.path.replace(/^files\//, ""));

describe("corpus manifest", () => {
  it("is present with its 23 files", () => {
    expect(manifest.files.length).toBe(23);
  });
});

describe("PDF (corpus)", () => {
  const textPdfs = names("pdf", "text").filter((n) => n !== "jo-japanese-vertical.pdf");

  it.each(textPdfs)("%s: page count, one marker per page, probes on their page, no page lost", async (name) => {
    const gt = entry(name).groundTruth;
    const doc = await load(name);
    expect(doc.format).toBe("pdf");
    expect(doc.pages).toBe(gt.pages);
    expect(doc.sheets).toBeUndefined();
    expect(doc.bytes).toBe(entry(name).bytes);
    expect(doc.text.startsWith("--- page 1 ---\n")).toBe(true);
    const { numbers, pages } = splitPages(doc.text);
    expect(numbers).toEqual(Array.from({ length: gt.pages }, (_, i) => i + 1));
    for (const probe of gt.probes as Probe[]) {
      expect(norm(pages.get(probe.page!)!), `"${probe.text}" on page ${probe.page}`).toContain(probe.text);
    }
    // Overall volume: within 5% of poppler's non-whitespace characters.
    const ours = nonWs([...pages.values()].join(""));
    expect(ours).toBeGreaterThan(gt.nonWhitespaceChars.plain * 0.95);
    expect(ours).toBeLessThan(gt.nonWhitespaceChars.plain * 1.05);
    // No page silently empty or halved: each page keeps at least half of poppler's text.
    (gt.perPagePlainChars as number[]).forEach((want, i) => {
      if (want > 200) expect(nonWs(pages.get(i + 1)!), `page ${i + 1}`).toBeGreaterThan(want * 0.5);
    });
    expect(doc.chars).toBe([...doc.text].length);
  });

  it("FinanceBench evidence anchors are on the pages the questions cite", async () => {
    for (const name of ["BOEING_2022_10K.pdf", "3M_2018_10K.pdf", "ULTABEAUTY_2023Q4_EARNINGS.pdf"]) {
      const { pages } = splitPages((await load(name)).text);
      for (const q of entry(name).questions ?? []) {
        for (const ev of q.evidence) expect(norm(pages.get(ev.page)!), `${name} p.${ev.page}`).toContain(ev.anchor);
      }
    }
  });

  it("opens the RC4 empty-user-password Boeing 10-K without a password", async () => {
    const doc = await load("BOEING_2022_10K.pdf");
    expect(doc.text).toContain("Commission file number 1-442");
  });

  it("keeps financial-statement rows on one line (label and figures together)", async () => {
    const boeing = splitPages((await load("BOEING_2022_10K.pdf")).text).pages.get(55)!;
    expect(boeing).toMatch(/^Basic loss per share\s+\(\$8\.30\)\s+\(\$7\.15\)\s+\(\$20\.88\)$/m);
    const mmm = splitPages((await load("3M_2018_10K.pdf")).text).pages.get(58)!;
    expect(mmm).toMatch(/^Raw materials and supplies\s+954\s+901$/m);
    const two = splitPages((await load("two-column-multicolumn.pdf")).text).pages.get(3)!;
    expect(two).toMatch(/^Denmark\s+5\.8\s+42,951\s+Copenhagen\s+Danish$/m);
    // Tables of text are not mistaken for text columns.
    const ulta = splitPages((await load("ULTABEAUTY_2023Q4_EARNINGS.pdf")).text).pages.get(3)!;
    expect(ulta).toMatch(/^Net sales\s+\$10\.95 billion to \$11\.05 billion$/m);
    const mmm1 = splitPages((await load("3M_2018_10K.pdf")).text).pages.get(1)!;
    expect(mmm1).toMatch(/^1\.500% Notes due 2026\s+New York Stock Exchange, Inc\.$/m);
  });

  it("reads multi-column pages column by column", async () => {
    // IRS 1040-NR instructions, three columns drawn row by row across the page.
    const irs = splitPages((await load("irs-i1040nr-2007.pdf")).text).pages.get(5)!;
    expect(irs).toMatch(/Dual-Status Tax Year\nA dual-status year is one in which you\nchange status between nonresident/);
    const col1End = irs.indexOf("remainder of the calendar year of your");
    const col2Start = irs.indexOf("from all sources for the part of the year");
    const col3Start = irs.indexOf("Restrictions for Dual-Status");
    expect(col1End).toBeGreaterThan(0);
    expect(col2Start).toBeGreaterThan(col1End);
    expect(col3Start).toBeGreaterThan(col2Start);
    // LaTeX two-column article: the left column's paragraph continues on the next line, not the right column.
    const two = splitPages((await load("two-column-multicolumn.pdf")).text).pages.get(1)!;
    expect(two).toMatch(/Lorem ipsum dolor sit amet, consectetuer adip-\niscing elit\. Ut purus elit, vestibulum ut, placerat\n/);
  });

  it("keeps German umlauts and ß", async () => {
    const doc = await load("geotopo-german-lecture-notes.pdf");
    expect(doc.text).toContain("Einführung in die");
    expect(doc.text).toContain("Gauß-Bonnet, 98");
  });

  it("recovers the text of zen_of_python_corrupted.pdf (bad zlib checksum)", async () => {
    const doc = await load("zen_of_python_corrupted.pdf");
    expect(doc.pages).toBe(1);
    expect(doc.text).toContain("Namespaces are one honking great idea");
  });

  it("jo-japanese-vertical.pdf: vertical Japanese (CJK fonts mapped through pdf.js CMap data)", async () => {
    const gt = entry("jo-japanese-vertical.pdf").groundTruth;
    const doc = await load("jo-japanese-vertical.pdf");
    for (const probe of gt.probes as Probe[]) expect(norm(doc.text)).toContain(probe.text);
  });


  it("refuses the password-protected PDF: document_encrypted, saying a password is required", async () => {
    expect(entry("libreoffice-writer-password.pdf").expect).toBe("error:encrypted");
    const e = await loadError("libreoffice-writer-password.pdf");
    expect(e.code).toBe("document_encrypted");
    expect(e.message).toMatch(/^libreoffice-writer-password\.pdf: .*password is required/);
  });

  it("refuses the corrupt PDF: document_corrupt", async () => {
    expect(entry("corrupt-invalid.pdf").expect).toBe("error:corrupt");
    const e = await loadError("corrupt-invalid.pdf");
    expect(e.code).toBe("document_corrupt");
    expect(e.message).toMatch(/^corrupt-invalid\.pdf: /);
  });

  it("reports the scanned PDF as document_no_text: OCR is not enabled", async () => {
    expect(entry("scanned-huckfinn-c02-22.pdf").expect).toBe("no-text");
    const e = await loadError("scanned-huckfinn-c02-22.pdf");
    expect(e.code).toBe("document_no_text");
    expect(e.message).toMatch(/^scanned-huckfinn-c02-22\.pdf: .*OCR is not enabled/);
  });
});

describe("DOCX (corpus)", () => {
  it.each(names("docx", "text"))("%s: text volume, first words, probes, tables", async (name) => {
    const gt = entry(name).groundTruth;
    const doc = await load(name);
    expect(doc.format).toBe("docx");
    expect(doc.pages).toBeUndefined();
    expect(doc.sheets).toBeUndefined();
    const body = plain(doc.text);
    const ours = nonWs(body);
    expect(ours).toBeGreaterThan(gt.nonWhitespaceChars * 0.9);
    expect(ours).toBeLessThan(gt.nonWhitespaceChars * 1.1);
    expect(norm(body).startsWith(norm(gt.first200).slice(0, 40))).toBe(true);
    for (const probe of gt.probes as Probe[]) expect(occurrences(norm(body), probe.text), probe.text).toBe(probe.occurrences);
    const tables = doc.text.match(/^\|(---\|)+$/gm)?.length ?? 0;
    expect(tables).toBeLessThanOrEqual(gt.tables);
    expect(tables).toBeGreaterThanOrEqual(Math.min(gt.tables, 1));
  });

  it("keeps headings, bulleted and numbered lists, and the table of docling-word-sample.docx", async () => {
    const t = (await load("docling-word-sample.docx")).text;
    expect(t).toMatch(/^## Summer activities$/m); // Subtitle style
    expect(t).toMatch(/^# Swimming in the lake$/m); // Title style
    expect(t).toMatch(/^# Let’s swim!$/m);
    expect(t).toMatch(/^## Let’s eat$/m);
    expect(t).toMatch(/^- You can relax and look around\n- Paddle about\n- Enjoy summer warmth$/m);
    expect(t).toMatch(/^1\. Wear sunglasses\n2\. Don’t forget to drink water\n3\. Use sun cream$/m);
    expect(t).toContain("|  | Food | Calories per portion |\n|---|---|---|\n| Leaves | Ash, Elm, Maple | 50 |");
  });

  it("expands merged cells of docling-word-tables.docx into aligned Markdown columns", async () => {
    const t = (await load("docling-word-tables.docx")).text;
    expect(t).toContain("| Cell 1.0 | Merged Cell 1.1 1.2 |  | Cell 1.3 |");
    expect(t).toContain("| Cell 1.0 | Merged Cell 1.1 2.1 | Cell 1.2 |\n| Cell 2.0 |  | Cell 2.2 |");
  });

  it("turns the long handbook's Heading styles into Markdown headings", async () => {
    const t = (await load("ust-handbook-chapter13-trustees.docx")).text;
    expect(t).toMatch(/^# CHAPTER 1 – INTRODUCTION$/m);
    expect(t).toMatch(/^## A\. PURPOSE$/m);
  });
});

describe("XLSX (corpus)", () => {
  /** The value our table shows for a cell address, e.g. "B18", in one sheet's section. */
  function cellValue(text: string, sheet: string, address: string): string | undefined {
    const sections = text.split(/^## Sheet: /m).slice(1);
    const section = sections.find((s) => s.split("\n", 1)[0]!.replace(/ \((very )?hidden\)$/, "") === sheet);
    if (!section) return undefined;
    const rows = tableRows(section);
    const [, col, row] = /^([A-Z]+)(\d+)$/.exec(address)!;
    const c = rows[0]!.indexOf(col!);
    const r = rows.find((x) => x[0] === row);
    return c < 0 || !r ? "" : r[c];
  }

  it.each(names("xlsx", "text"))("%s: sheet names and order, labels, cell probes (cached formula values)", async (name) => {
    const gt = entry(name).groundTruth;
    const doc = await load(name);
    expect(doc.format).toBe("xlsx");
    expect(doc.pages).toBeUndefined();
    expect(doc.sheets).toEqual(gt.sheetNames);
    const headings = doc.text.match(/^## Sheet: .*$/gm)!;
    expect(headings.length).toBe(gt.sheetCount ?? gt.sheetNames.length);
    const hidden = new Map<string, string>((gt.hiddenSheets as { name: string; state: string }[]).map((h) => [h.name, h.state]));
    (gt.sheetNames as string[]).forEach((s, i) => {
      const label = hidden.get(s) === "veryHidden" ? " (very hidden)" : hidden.get(s) === "hidden" ? " (hidden)" : "";
      expect(headings[i]).toBe(`## Sheet: ${s.trim()}${label}`);
    });
    for (const p of gt.cellProbes as { sheet: string; cell: string; value: string | number }[]) {
      expect(cellValue(doc.text, p.sheet, p.cell), `${p.sheet}!${p.cell}`).toBe(String(p.value));
    }
  });

  it("shows formula results, not formulas", async () => {
    const t = (await load("nestle-2023-half-year-analyses-by-segment.xlsx")).text;
    expect(t).not.toMatch(/=SUM\(/);
    expect(t).toContain("| 18 | Total | 46293 |");
  });

  it("labels the column letters and row numbers", () => {
    expect([1, 26, 27, 52, 703].map(columnLetters)).toEqual(["A", "Z", "AA", "AZ", "AAA"]);
  });

  it("refuses the Agile-encrypted workbook (OLE/CFB container): document_encrypted", async () => {
    expect(entry("encryption-agile-123q.xlsx").expect).toBe("error:encrypted");
    const e = await loadError("encryption-agile-123q.xlsx");
    expect(e.code).toBe("document_encrypted");
    expect(e.message).toMatch(/^encryption-agile-123q\.xlsx: .*password is required/);
  });
});

describe("CSV (corpus)", () => {
  it.each(names("csv", "text"))("%s: one Markdown table with every row, the header, and row probes", async (name) => {
    const gt = entry(name).groundTruth;
    const doc = await load(name);
    expect(doc.format).toBe("csv");
    const rows = tableRows(doc.text);
    expect(rows[0]).toEqual(gt.header);
    expect(rows.length - 1).toBe(gt.rows);
    expect(rows.every((r) => r.length === gt.columns)).toBe(true);
    for (const p of gt.rowProbes as { match: Record<string, string>; column: string; value: string }[]) {
      const hits = rows.slice(1).filter((r) => Object.entries(p.match).every(([k, v]) => r[gt.header.indexOf(k)] === v));
      expect(hits.length).toBe(1);
      expect(hits[0]![gt.header.indexOf(p.column)]).toBe(p.value);
    }
  });

  it("keeps quoted fields with commas whole (sp500) and handles CRLF without a final newline (world-gdp)", async () => {
    expect((await load("sp500-constituents.csv")).text).toContain("| MMM | 3M | Industrials | Industrial Conglomerates | Saint Paul, Minnesota | 1957-03-04 | 66740 | 1902 |");
    const gdp = (await load("world-gdp.csv")).text;
    expect(gdp).not.toContain("\r");
    expect(gdp.endsWith("| 2023 | 265382734984.46143 |\n") || /\| \d{4} \| [\d.]+ \|\n$/.test(gdp)).toBe(true);
  });
});

describe("HTML (corpus)", () => {
  it.each(names("html", "text"))("%s: title, start of the text, probes, tables, volume", async (name) => {
    const gt = entry(name).groundTruth;
    const doc = await load(name);
    expect(doc.format).toBe("html");
    if (gt.title) expect(doc.text.split("\n", 1)[0]).toBe(`Title: ${gt.title}`);
    else expect(doc.text.startsWith("Title:")).toBe(false);
    const body = norm(plain(doc.text));
    expect(body.startsWith(norm(gt.first200).slice(0, 60))).toBe(true);
    for (const probe of gt.probes as Probe[]) expect(occurrences(body, probe.text), probe.text).toBe(probe.occurrences);
    // Whitespace-collapsed volume within 10% of the ground truth's.
    expect(body.length).toBeGreaterThan(gt.chars * 0.9);
    expect(body.length).toBeLessThan(gt.chars * 1.1);
    const tables = doc.text.match(/^\|(---\|)+$/gm)?.length ?? 0;
    expect(tables).toBeLessThanOrEqual(gt.tables);
    // Layout tables of one row or one column are written as lines, so fewer Markdown tables.
    expect(tables).toBeGreaterThanOrEqual(Math.floor(gt.tables * 0.4));
  });

  it("drops the iXBRL filing's hidden facts (display:none) and keeps its statements as tables", async () => {
    const gt = entry("galaxy-gaming-2021-10k-ixbrl.html").groundTruth;
    const t = (await load("galaxy-gaming-2021-10k-ixbrl.html")).text;
    expect(gt.charsIncludingHidden - gt.chars).toBeGreaterThan(10_000);
    expect(t.split("\n")[2]).toBe("UNITED STATES");
    expect(t).not.toMatch(/ix:header|xbrli:/i);
    expect(t).toContain("|  | 2021 | 2020 |\n|---|---|---|\n| Revenue: |  |  |\n| Licensing fees | $19,984,378 | $10,230,316 |\n| Total revenue | 19,984,378 | 10,230,316 |");
  });

  it("keeps the PATRIOT Act's <pre> layout (.htm, no head, no title)", async () => {
    const t = (await load("usa-patriot-act-publ107-56-pre.htm")).text;
    expect(t.startsWith("[107th Congress Public Law 56]\n[From the U.S. Government Printing Office]\n")).toBe(true);
    expect(t).toContain("\n\n<DOC>\n[DOCID: f:publ056.107]\n");
  });

  it("drops scripts and styles from the Wikipedia page and keeps its wikitable", async () => {
    const t = (await load("wikipedia-list-of-films-featuring-time-loops.html")).text;
    expect(t).not.toMatch(/function\s*\(|RLCONF|\.mw-parser-output/);
    expect(t).toMatch(/^\| Film \| Year \| Description \|$/m);
    expect(t).toMatch(/^\| Groundhog Day \| 1993 \| /m);
  });
});
