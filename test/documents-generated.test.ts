/**
 * Document loaders on files generated here: bad inputs (empty, binary junk, too large, archive
 * bombs, corrupt ZIPs, encrypted/legacy Office containers), format detection, and small
 * well-formed PDFs / XLSX / HTML / CSV / text whose exact output we know.
 */
import ExcelJS from "exceljs";
import { strToU8, zipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { detectFormat, loadDocument, type LoadOptions } from "../shared/documents/index.ts";
import { htmlToText } from "../shared/documents/html.ts";
import { decodeText, tidyBytes } from "../shared/documents/text.ts";
import { finishText, stripControls } from "../shared/documents/util.ts";
import { LongdocError } from "../shared/errors.ts";

const u8 = (s: string) => new TextEncoder().encode(s);

async function loadErr(bytes: Uint8Array, name: string, opts?: LoadOptions): Promise<LongdocError> {
  try {
    await loadDocument({ bytes, name }, opts);
  } catch (e) {
    if (LongdocError.is(e)) return e;
    throw e;
  }
  throw new Error(`${name} loaded without an error`);
}

const text = async (bytes: Uint8Array | string, name: string) => (await loadDocument({ bytes: typeof bytes === "string" ? u8(bytes) : bytes, name })).text;

// ---------------------------------------------------------------------------------------------
// A minimal PDF writer (Helvetica text at given positions, optional image-only pages).

interface Run {
  x: number;
  y: number;
  text: string;
  size?: number;
}
type PageSpec = Run[] | "image";

function makePdf(pages: PageSpec[]): Uint8Array {
  const objs: string[] = [];
  const add = (body: string) => objs.push(body) - 1 + 1; // 1-based object number
  const catalog = add("");
  const pagesObj = add("");
  const font = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  const kids: number[] = [];
  const esc = (s: string) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  for (const p of pages) {
    let content: string;
    let resources: string;
    if (p === "image") {
      const img = add("<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length 4 >>\nstream\n\x00\xff\xff\x00\nendstream");
      content = "q 200 0 0 200 100 300 cm /Im1 Do Q";
      resources = `<< /XObject << /Im1 ${img} 0 R >> >>`;
    } else {
      content = p.map((r) => `BT /F1 ${r.size ?? 10} Tf 1 0 0 1 ${r.x} ${r.y} Tm (${esc(r.text)}) Tj ET`).join("\n");
      resources = `<< /Font << /F1 ${font} 0 R >> >>`;
    }
    const stream = add(`<< /Length ${content.length} >>\nstream\n${content}\nendstream`);
    kids.push(add(`<< /Type /Page /Parent ${pagesObj} 0 R /MediaBox [0 0 612 792] /Resources ${resources} /Contents ${stream} 0 R >>`));
  }
  objs[catalog - 1] = `<< /Type /Catalog /Pages ${pagesObj} 0 R >>`;
  objs[pagesObj - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(" ")}] /Count ${kids.length} >>`;
  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  objs.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root ${catalog} 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Uint8Array.from(out, (c) => c.charCodeAt(0)); // latin1
}

// ---------------------------------------------------------------------------------------------
// ZIP helpers: patch the declared uncompressed sizes (central directory and local headers).

function patchDeclaredSizes(zip: Uint8Array, entry: string, size: number): Uint8Array {
  const z = zip.slice();
  const dv = new DataView(z.buffer);
  const name = new TextEncoder().encode(entry);
  const nameAt = (i: number, len: number) => len === name.length && name.every((c, k) => z[i + k] === c);
  for (let i = 0; i + 46 < z.length; i++) {
    const sig = dv.getUint32(i, true);
    if (sig === 0x02014b50 && nameAt(i + 46, dv.getUint16(i + 28, true))) dv.setUint32(i + 24, size, true);
    if (sig === 0x04034b50 && nameAt(i + 30, dv.getUint16(i + 26, true))) dv.setUint32(i + 22, size, true);
  }
  return z;
}

const docxParts = (documentXml: Uint8Array) => ({
  "[Content_Types].xml": strToU8(
    '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
  ),
  "_rels/.rels": strToU8(
    '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
  ),
  "word/document.xml": documentXml,
});

const simpleDocumentXml = strToU8(
  '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello from a generated DOCX</w:t></w:r></w:p></w:body></w:document>',
);

// ---------------------------------------------------------------------------------------------

describe("bad inputs", () => {
  it("an empty file is document_empty, for every format, naming the file", async () => {
    for (const name of ["empty.pdf", "empty.docx", "empty.txt", "empty"]) {
      const e = await loadErr(new Uint8Array(0), name);
      expect(e.code).toBe("document_empty");
      expect(e.message.startsWith(`${name}: `)).toBe(true);
    }
    const blank = await loadErr(u8("  \n\t\r\n "), "blank.txt");
    expect(blank.code).toBe("document_empty");
  });

  it("over maxBytes is document_too_large with the size and the limit", async () => {
    const e = await loadErr(u8("x".repeat(101)), "big.txt", { maxBytes: 100 });
    expect(e.code).toBe("document_too_large");
    expect(e.message).toMatch(/^big\.txt: .*101 bytes.*100 bytes/);
    expect((await loadDocument({ bytes: u8("x".repeat(100)), name: "ok.txt" }, { maxBytes: 100 })).chars).toBe(101); // + final newline
  });

  it("binary junk is document_unsupported", async () => {
    const junk = new Uint8Array(4096);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) % 256;
    for (const name of ["data.bin", "notes.txt", "noext"]) {
      const e = await loadErr(junk, name);
      expect(e.code).toBe("document_unsupported");
      expect(e.message.startsWith(`${name}: `)).toBe(true);
    }
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
    const e = await loadErr(png, "scan.png");
    expect(e.code).toBe("document_unsupported");
    expect(e.message).toMatch(/PNG image.*OCR is not enabled/);
  });

  it("a ZIP that is not DOCX/XLSX, and a PPTX, are document_unsupported", async () => {
    expect((await loadErr(zipSync({ "a.txt": strToU8("hi") }), "files.zip")).code).toBe("document_unsupported");
    const pptx = await loadErr(zipSync({ "ppt/presentation.xml": strToU8("<p/>") }), "deck.pptx");
    expect(pptx.code).toBe("document_unsupported");
    expect(pptx.message).toMatch(/PowerPoint/);
  });

  it("legacy .doc/.xls (CFB without encryption) is unsupported; encrypted OOXML (CFB) is document_encrypted", async () => {
    const cfb = new Uint8Array(1024);
    cfb.set([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
    const legacy = await loadErr(cfb, "old.doc");
    expect(legacy.code).toBe("document_unsupported");
    expect(legacy.message).toMatch(/legacy/);
    const enc = cfb.slice();
    enc.set(Array.from("EncryptedPackage", (c) => [c.charCodeAt(0), 0]).flat(), 512);
    for (const name of ["secret.docx", "secret.xlsx", "secret.bin"]) {
      const e = await loadErr(enc, name);
      expect(e.code).toBe("document_encrypted");
      expect(e.message).toMatch(new RegExp(`^${name.replace(".", "\\.")}: .*password is required`));
    }
  });
});

describe("archive bombs and corrupt ZIPs", () => {
  const MiB = 1024 * 1024;

  it("a DOCX declaring more uncompressed bytes than the cap is refused before inflating", async () => {
    const zip = zipSync(docxParts(new Uint8Array(MiB)), { level: 9 }); // 1 MiB of zeros: ~1 KiB compressed
    expect(zip.length).toBeLessThan(10_000);
    const bomb = patchDeclaredSizes(zip, "word/document.xml", 0xfff00000); // declares ~4 GiB
    const t0 = performance.now();
    const e = await loadErr(bomb, "bomb.docx");
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e.code).toBe("document_too_large");
    expect(e.message).toMatch(/^bomb\.docx: .*over the limit of 512 MiB \(536870912 bytes\) \(maxUncompressedBytes\)/);
  });

  it("an XLSX bomb likewise, and the cap is configurable", async () => {
    const zip = zipSync({ "[Content_Types].xml": strToU8("<Types/>"), "xl/workbook.xml": new Uint8Array(2 * MiB) }, { level: 9 });
    const e = await loadErr(patchDeclaredSizes(zip, "xl/workbook.xml", 0xfff00000), "bomb.xlsx");
    expect(e.code).toBe("document_too_large");
    const honest = await loadErr(zip, "honest.xlsx", { maxUncompressedBytes: MiB });
    expect(honest.code).toBe("document_too_large");
    expect(honest.message).toMatch(/over the limit of 1 MiB/);
  });

  it("an entry that inflates past its declared size (lying header) is stopped, not inflated", async () => {
    const zip = zipSync(docxParts(new Uint8Array(64 * MiB)), { level: 1 });
    const liar = patchDeclaredSizes(zip, "word/document.xml", 1000);
    const t0 = performance.now();
    const e = await loadErr(liar, "liar.docx");
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(e.code).toBe("document_corrupt");
    expect(e.message).toMatch(/^liar\.docx: .*past its declared size/);
  });

  it("a truncated DOCX and a DOCX with damaged compressed data are document_corrupt", async () => {
    const good = zipSync(docxParts(simpleDocumentXml), { level: 6 });
    expect((await loadDocument({ bytes: good, name: "good.docx" })).text).toBe("Hello from a generated DOCX\n");
    const truncated = await loadErr(good.subarray(0, Math.floor(good.length / 2)), "cut.docx");
    expect(truncated.code).toBe("document_corrupt");
    expect(truncated.message.startsWith("cut.docx: ")).toBe(true);
    // Overwrite the start of word/document.xml's deflate data with junk.
    const damaged = good.slice();
    const at = new TextDecoder("latin1").decode(damaged).indexOf("word/document.xml") + "word/document.xml".length;
    damaged.fill(0xff, at, at + 8);
    const e = await loadErr(damaged, "damaged.docx");
    expect(e.code).toBe("document_corrupt");
  });

  it("a ZIP without word/document.xml but named .docx is corrupt, not a crash", async () => {
    const e = await loadErr(zipSync({ "word/other.xml": strToU8("<x/>") }), "odd.docx");
    expect(e.code).toBe("document_corrupt");
  });
});

describe("format detection", () => {
  it("trusts content over the extension", () => {
    expect(detectFormat(makePdf([[{ x: 72, y: 700, text: "hi" }]]), "really-a-pdf.txt")).toBe("pdf");
    expect(detectFormat(zipSync(docxParts(simpleDocumentXml)), "report.bin")).toBe("docx");
    expect(detectFormat(zipSync({ "xl/workbook.xml": strToU8("<w/>") }), "noext")).toBe("xlsx");
    expect(detectFormat(u8("<!DOCTYPE html><p>x</p>"), "page.txt")).toBe("html");
  });

  it("uses the extension among text formats, and sniffs when there is none", () => {
    expect(detectFormat(u8("a,b\n1,2\n"), "t.csv")).toBe("csv");
    expect(detectFormat(u8("a\tb\n"), "t.tsv")).toBe("csv");
    expect(detectFormat(u8("# Title\n"), "r.md")).toBe("markdown");
    expect(detectFormat(u8("<p>x</p>"), "x.htm")).toBe("html");
    expect(detectFormat(u8('{"a": [1, 2]}'), "data")).toBe("json");
    expect(detectFormat(u8("# Heading\n\ntext"), "README")).toBe("markdown");
    expect(detectFormat(u8("<html><body>x</body></html>"), "page")).toBe("html");
    expect(detectFormat(u8("BMW annual report\n"), "notes")).toBe("text"); // "BM" is not a bitmap here
  });

  it("throws document_unsupported for other formats", () => {
    expect(() => detectFormat(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), "photo.jpg")).toThrow(/JPEG image/);
  });
});

describe("PDF (generated)", () => {
  it("writes a `--- page N ---` marker before every page, empty pages included", async () => {
    const pdf = makePdf([[{ x: 72, y: 700, text: "First page text" }], [], [{ x: 72, y: 700, text: "Third page text" }]]);
    const doc = await loadDocument({ bytes: pdf, name: "three.pdf" });
    expect(doc.pages).toBe(3);
    expect(doc.text).toBe("--- page 1 ---\nFirst page text\n\n--- page 2 ---\n\n\n--- page 3 ---\nThird page text\n");
  });

  it("does not detach the caller's buffer", async () => {
    const pdf = makePdf([[{ x: 72, y: 700, text: "still here" }]]);
    await loadDocument({ bytes: pdf, name: "keep.pdf" });
    expect(pdf.length).toBeGreaterThan(0);
    expect(new TextDecoder().decode(pdf.subarray(0, 5))).toBe("%PDF-");
  });

  it("reads two columns drawn row by row in column order", async () => {
    const left = ["The left column starts here and", "continues with its second line of", "prose that belongs to the left side."];
    const right = ["The right column is separate and", "must come after the entire left", "column when the page is read."];
    const runs: Run[] = [];
    left.forEach((t, i) => {
      runs.push({ x: 72, y: 700 - i * 12, text: t });
      runs.push({ x: 320, y: 700 - i * 12, text: right[i]! });
    });
    const t = await text(makePdf([runs]), "columns.pdf");
    expect(t).toBe(`--- page 1 ---\n${left.join("\n")}\n\n${right.join("\n")}\n`);
  });

  it("keeps a table's rows together (labels with their figures)", async () => {
    const rows = [
      ["Revenue", "1,234", "1,100"],
      ["Cost of sales", "(800)", "(700)"],
      ["Gross profit", "434", "400"],
    ];
    const runs: Run[] = [];
    rows.forEach((r, i) => r.forEach((c, j) => runs.push({ x: [72, 400, 480][j]!, y: 700 - i * 14, text: c })));
    const t = await text(makePdf([runs]), "table.pdf");
    expect(t).toBe("--- page 1 ---\nRevenue  1,234  1,100\nCost of sales  (800)  (700)\nGross profit  434  400\n");
  });

  it("puts a full-width heading before the columns under it", async () => {
    const runs: Run[] = [{ x: 72, y: 740, text: "A Heading Across The Whole Page Width Of The Document", size: 16 }];
    for (let i = 0; i < 4; i++) {
      runs.push({ x: 72, y: 700 - i * 12, text: `left column line number ${i + 1} of prose` });
      runs.push({ x: 320, y: 700 - i * 12, text: `right column line number ${i + 1} of prose` });
    }
    const lines = (await text(makePdf([runs]), "heading.pdf")).split("\n").filter(Boolean);
    expect(lines.slice(0, 3)).toEqual(["--- page 1 ---", "A Heading Across The Whole Page Width Of The Document", "left column line number 1 of prose"]);
    expect(lines.indexOf("right column line number 1 of prose")).toBe(lines.indexOf("left column line number 4 of prose") + 1);
  });

  it("an image-only PDF is document_no_text (OCR is not enabled)", async () => {
    const e = await loadErr(makePdf(["image", "image"]), "scan.pdf");
    expect(e.code).toBe("document_no_text");
    expect(e.message).toMatch(/^scan\.pdf: no text layer in any of its 2 page\(s\).*OCR is not enabled/);
  });

  it("opens a PDF whose xref offset is wrong (pdf.js rebuilds it)", async () => {
    const good = new TextDecoder("latin1").decode(makePdf([[{ x: 72, y: 700, text: "Recovered text" }]]));
    const broken = good.replace(/startxref\n\d+/, "startxref\n99999");
    expect(await text(Uint8Array.from(broken, (c) => c.charCodeAt(0)), "broken.pdf")).toContain("Recovered text");
  });

  it("garbage after a PDF header, or a .pdf that is not a PDF, is document_corrupt", async () => {
    const junk = new Uint8Array(2000).map((_, i) => (i * 31 + 7) % 256);
    junk.set(u8("%PDF-1.7\n"));
    expect((await loadErr(junk, "junk.pdf")).code).toBe("document_corrupt");
    const notPdf = new Uint8Array(2000).map((_, i) => (i * 31 + 7) % 256);
    expect((await loadErr(notPdf, "fake.pdf")).code).toBe("document_corrupt");
  });
});

describe("XLSX (generated)", () => {
  it("labels sheets, shows cached values (including 0), formats, merges, hidden and empty sheets", async () => {
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet("Data");
    ws.getCell("A1").value = "Name";
    ws.getCell("B1").value = "Amount";
    ws.getCell("A2").value = "x|y";
    ws.getCell("B2").value = 5;
    ws.getCell("B3").value = { formula: "B2-5", result: 0 } as ExcelJS.CellFormulaValue;
    ws.getCell("B4").value = { formula: "B2*2", result: 10 } as ExcelJS.CellFormulaValue;
    ws.getCell("C2").value = 0.125;
    ws.getCell("C2").numFmt = "0.0%";
    ws.getCell("D2").value = new Date(Date.UTC(2024, 0, 31));
    ws.getCell("E2").value = { richText: [{ text: "rich " }, { text: "text" }] };
    ws.getCell("F2").value = "line1\nline2";
    ws.getCell("G2").value = 0.1 + 0.2;
    ws.mergeCells("A5:C5");
    ws.getCell("A5").value = "merged";
    wb.addWorksheet("Secret", { state: "hidden" }).getCell("A1").value = "hidden value";
    wb.addWorksheet("Empty");
    const bytes = new Uint8Array((await wb.xlsx.writeBuffer()) as ArrayBuffer);
    const doc = await loadDocument({ bytes, name: "gen.xlsx" });
    expect(doc.format).toBe("xlsx");
    expect(doc.sheets).toEqual(["Data", "Secret", "Empty"]);
    expect(doc.text).toBe(
      [
        "## Sheet: Data",
        "",
        "|  | A | B | C | D | E | F | G |",
        "|---|---|---|---|---|---|---|---|",
        "| 1 | Name | Amount |  |  |  |  |  |",
        "| 2 | x\\|y | 5 | 12.5% | 2024-01-31 | rich text | line1<br>line2 | 0.3 |",
        "| 3 |  | 0 |  |  |  |  |  |",
        "| 4 |  | 10 |  |  |  |  |  |",
        "| 5 | merged |  |  |  |  |  |  |",
        "",
        "## Sheet: Secret (hidden)",
        "",
        "|  | A |",
        "|---|---|",
        "| 1 | hidden value |",
        "",
        "## Sheet: Empty",
        "",
        "(empty sheet)",
        "",
      ].join("\n"),
    );
  });
});

describe("CSV (generated)", () => {
  it("quoted commas and newlines, CRLF, no final newline, pipes", async () => {
    const csv = 'name,city,note\r\n"Smith, J.",Paris,"two\r\nlines"\r\nDoe,"A|B",plain';
    expect(await text(csv, "people.csv")).toBe("| name | city | note |\n|---|---|---|\n| Smith, J. | Paris | two<br>lines |\n| Doe | A\\|B | plain |\n");
  });

  it("sniffs semicolons and reads .tsv as tab-separated; ragged rows are padded", async () => {
    expect(await text("a;b\n1;2,5\n", "eu.csv")).toBe("| a | b |\n|---|---|\n| 1 | 2,5 |\n");
    expect(await text("a\tb\tc\n1\t2\n", "t.tsv")).toBe("| a | b | c |\n|---|---|---|\n| 1 | 2 |  |\n");
  });
});

describe("HTML (generated)", () => {
  it("drops head, scripts, styles, hidden elements; keeps the title first", () => {
    const html = `<html><head><title>The Title</title><style>p{color:red}</style><script>var x = 1;</script></head>
      <body><div style="display: none"><p>secret fact</p></div><p hidden>hidden para</p>
      <span style="color:red; DISPLAY:NONE !important">gone</span><noscript>enable js</noscript><template><p>tpl</p></template>
      <p>Visible</p></body></html>`;
    expect(htmlToText(html).text.trim()).toBe("Title: The Title\n\nVisible");
  });

  it("headings, nested lists, line breaks, pre, entities, words split across spans", () => {
    const html = `<h1>Top</h1><p>One&nbsp;two &amp; <b>th</b><i>ree</i><br>next line</p>
      <ul><li>a<ul><li>a.1</li></ul></li><li>b</li></ul><ol start="3"><li>c</li><li>d</li></ol>
      <pre>  keep   this
    layout</pre><h2>Sub</h2>`;
    expect(htmlToText(html).text.trim()).toBe("# Top\n\nOne two & three\nnext line\n\n- a\n  - a.1\n- b\n\n3. c\n4. d\n\n  keep   this\n    layout\n\n## Sub");
  });

  it("tables become Markdown with colspan/rowspan expanded; one-row tables become lines", () => {
    const html = `<table><tr><th>Item</th><th colspan="2">Years</th></tr>
      <tr><td rowspan="2">Sales</td><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></table>
      <table><tr><td>Item 1.</td><td>Business</td></tr></table>`;
    const r = htmlToText(html);
    expect(r.text.trim()).toBe("| Item | Years |  |\n|---|---|---|\n| Sales | 1 | 2 |\n|  | 3 | 4 |\n\nItem 1. Business");
    expect(r.tables).toBe(1);
  });

  it("financial layout: $ joins its figure, ) and % join theirs, spanned headers sit over the figures", () => {
    const html = `<table>
      <tr><td></td><td colspan="3">2021</td></tr>
      <tr><td>Revenue</td><td>$</td><td>1,000</td><td></td></tr>
      <tr><td>Loss</td><td></td><td>(50</td><td>)</td></tr>
      <tr><td>Margin</td><td></td><td>12</td><td>%</td></tr></table>`;
    expect(htmlToText(html).text.trim()).toBe("|  | 2021 |\n|---|---|\n| Revenue | $1,000 |\n| Loss | (50) |\n| Margin | 12% |");
  });

  it("an .htm without <head> and a page declaring windows-1252 load", async () => {
    expect(await text("<html><body><pre>a  b\nc</pre></body></html>", "law.htm")).toBe("a  b\nc\n");
    const latin = Uint8Array.from([...u8('<html><head><meta charset="windows-1252"></head><body><p>caf'), 0xe9, 0x20, 0x93, 0x71, 0x94, ...u8("</p></body></html>")]);
    expect(await text(latin, "old.html")).toBe("café “q”\n");
  });
});

describe("text, Markdown, JSON", () => {
  it("pass through as is, with the UTF-8 BOM dropped and LF line endings", async () => {
    expect(await text("\uFEFF# Notes\r\n\r\n- item  \r\n", "n.md")).toBe("# Notes\n\n- item\n");
    const json = '{"b": [1, 2],\n  "a": "x"}';
    const doc = await loadDocument({ bytes: u8(json), name: "d.json" });
    expect(doc.format).toBe("json");
    expect(doc.text).toBe(`${json}\n`);
  });

  it("decodes UTF-16 with a BOM, and Windows-1252 when the detector is sure of it", async () => {
    const utf16 = new Uint8Array([0xff, 0xfe, ...Array.from("héllo", (c) => [c.charCodeAt(0), 0]).flat()]);
    expect(await text(utf16, "u16.txt")).toBe("héllo\n");
    const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    expect(await text(latin1("Grüße aus München, sagte der Bäcker."), "cp1252.txt")).toBe("Grüße aus München, sagte der Bäcker.\n");
    // Four bytes say too little: the file fails rather than guess.
    expect((await loadErr(latin1("café"), "cp1252.txt")).code).toBe("document_encoding");
    expect(await text(latin1("café"), "cp1252.txt").catch(() => null)).toBeNull();
    expect((await loadDocument({ bytes: latin1("café"), name: "cp1252.txt" }, { encoding: "windows-1252" })).text).toBe("café\n");
  });

  it("counts chars in code points and reports bytes", async () => {
    const doc = await loadDocument({ bytes: u8("a😀b"), name: "e.txt" });
    expect(doc).toEqual({ format: "text", text: "a😀b\n", bytes: 6, chars: 4, encoding: "utf-8" });
  });

  it("skips the clean-up passes only when they would change nothing (tidyBytes)", () => {
    // Each of these needs a clean-up pass, so the byte check must say no.
    const untidy = ["a \nb", "a\t\n", "a\u00a0\nb", "a \u2028b", "a\t\u2029", "a\n\n\n\nb", "a\r\nb", "a\x0cb", "a\x7fb", "a\x00b", "\x1b[0m"];
    // At every alignment (the check reads four bytes at a time from an aligned address), and in the words or at the ends.
    const at = (bytes: Uint8Array, offset: number) => {
      const whole = new Uint8Array(bytes.length + 3);
      whole.set(bytes, offset);
      return whole.subarray(offset, offset + bytes.length);
    };
    for (const t of untidy) {
      for (const pad of ["", "x", "xx", "xxx", "xxxxxxxxx"]) {
        for (let offset = 0; offset < 4; offset++) {
          for (const text of [pad + t, t + pad]) expect({ text, offset, tidy: tidyBytes(at(u8(text), offset)) }).toEqual({ text, offset, tidy: false });
        }
      }
    }
    expect(tidyBytes(Uint8Array.from([0x61, 0xa0, 0x0a]))).toBe(false); // Windows-1252 no-break space before a line end
    // Past the first 64 KiB too (the check runs in slices).
    expect(tidyBytes(u8("x".repeat(70_000) + " \n"))).toBe(false);
    expect(tidyBytes(u8("# Notes\n\n- item\n\n\ntext 1.5% 😀 Ж\u2028end"))).toBe(true);
    // Whenever it says yes, the fast path's text is exactly the full clean-up's: seeded random texts
    // over the characters the rules look at, as UTF-8 and as single bytes (Windows-1252).
    let seed = 99;
    const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed);
    const palette = ["a", "Z", " ", " ", "\t", "\n", "\n", "\r", "\u00a0", "\u2028", "\u2029", "\u0085", "é", "€", "\ufeff", "\x0c", "\x7f", "\x00", "\x1f", "😀", "Š"];
    let tidyCount = 0;
    for (let i = 0; i < 20_000; i++) {
      let t = "";
      for (let n = next() % (i % 3 ? 12 : 40); n > 0; n--) t += palette[next() % palette.length];
      const bytes = at(i % 2 ? u8(t) : Uint8Array.from(Array.from(t, (c) => c.charCodeAt(0) & 0xff)), next() % 4);
      if (!tidyBytes(bytes)) continue;
      tidyCount++;
      const decoded = decodeText(bytes);
      expect({ t, fast: finishText(decoded, { tidy: true }) }).toEqual({ t, fast: finishText(stripControls(decoded)) });
    }
    expect(tidyCount).toBeGreaterThan(1000);
  });

  it("finishes text by its rules, written plainly here: LF endings, no trailing blanks, at most two blank lines, one final newline", () => {
    const byRules = (s: string) => {
      const t = s.replace(/\r\n?/g, "\n").replace(/[ \t\u00a0]+$/gm, "").replace(/\n{4,}/g, "\n\n\n").replace(/^\n+/, "").replace(/\s+$/, "");
      return t === "" ? "" : t + "\n";
    };
    let seed = 7;
    const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed);
    const palette = ["a", "b", " ", "\t", "\n", "\n", "\r", "\r\n", "\u00a0", "\u2028", "\u2029", "\u3000", "\ufeff", "\ud800", "é"];
    for (let i = 0; i < 20_000; i++) {
      let t = "";
      for (let n = next() % 14; n > 0; n--) t += palette[next() % palette.length];
      expect({ t, out: finishText(t) }).toEqual({ t, out: byRules(t) });
    }
  });
});
