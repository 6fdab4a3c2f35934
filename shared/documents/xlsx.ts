/**
 * XLSX → one labelled Markdown table per sheet, in workbook order:
 *
 *     ## Sheet: Revenue
 *
 *     |  | A | B |
 *     |---|---|---|
 *     | 1 | Region | Sales |
 *     | 9 | Zone NA | 12553 |
 *
 * - The header row holds the column letters and the first column the row numbers, so every
 *   value can be cited by its cell address (B9). Rows and columns with no value are left out.
 * - Formulas show their computed (cached) value, as Excel last saved it; nothing is recalculated.
 *   A formula without a cached value shows as `=FORMULA`.
 * - Merged ranges show their value once, in the top-left cell.
 * - Numbers are written plainly (15 significant digits; percent formats as `12.5%`), dates as
 *   ISO `YYYY-MM-DD` (with the time when there is one), rich text as its plain text, errors as
 *   `#N/A` etc. Line breaks inside a cell become `<br>`. (exceljs loses cached values that are
 *   falsy, 0 or "" or FALSE; those are read back from the worksheet XML.)
 * - Hidden and very hidden sheets are INCLUDED (lookup data often lives there) but labelled:
 *   `## Sheet: Name (hidden)` / `(very hidden)`. An empty sheet is written as `(empty sheet)`.
 * - `sheets` lists every sheet name in workbook order, hidden ones included.
 *
 * The ZIP is opened with the archive-bomb cap first (zip.ts); images and other media are never
 * inflated. Password-protected workbooks are OLE/CFB containers, refused before this loader.
 */
import ExcelJS from "exceljs";
import { markdownTable } from "./markdown.ts";
import { docError, formatBytes } from "./util.ts";
import { readZipDirectory, storedZip, unzipBounded } from "./zip.ts";

const SKIP_PARTS = /^xl\/(media|embeddings|printerSettings)\//i;

export function columnLetters(n: number): string {
  let s = "";
  for (let x = n; x > 0; x = Math.floor((x - 1) / 26)) s = String.fromCharCode(65 + ((x - 1) % 26)) + s;
  return s;
}

function formatNumber(n: number, numFmt: string | undefined): string {
  if (!Number.isFinite(n)) return String(n);
  if (numFmt && /%/.test(numFmt.replace(/"[^"]*"/g, ""))) {
    const decimals = /0\.(0+)%/.exec(numFmt)?.[1]?.length ?? 0;
    return `${(n * 100).toFixed(decimals)}%`;
  }
  const r = Number(n.toPrecision(15));
  if (Math.abs(r) >= 1e21 || (Math.abs(r) < 1e-6 && r !== 0)) return String(r);
  return String(r);
}

function formatDate(d: Date): string {
  if (Number.isNaN(d.getTime())) return "";
  const iso = d.toISOString();
  const time = iso.slice(11, 19);
  return time === "00:00:00" ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${time}`;
}

type CellValue = ExcelJS.CellValue;

export function formatValue(v: CellValue | undefined, numFmt?: string): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return formatNumber(v, numFmt);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "TRUE" : "FALSE";
  if (v instanceof Date) return formatDate(v);
  if (typeof v === "object") {
    const o = v as unknown as Record<string, unknown>;
    if ("richText" in o && Array.isArray(o.richText)) return (o.richText as { text?: string }[]).map((t) => t.text ?? "").join("");
    if ("error" in o && typeof o.error === "string") return o.error;
    if ("formula" in o || "sharedFormula" in o) {
      if (o.result !== undefined && o.result !== null) return formatValue(o.result as CellValue, numFmt);
      const f = (o.formula ?? o.sharedFormula) as string | undefined;
      return f ? `=${f}` : "";
    }
    if ("text" in o) {
      const t = o.text;
      return typeof t === "string" ? t : formatValue(t as CellValue, numFmt);
    }
  }
  return String(v);
}

const unescapeXml = (s: string) =>
  s.replace(/&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-f]+));/gi, (m, name: string, dec?: string, hex?: string) => {
    if (dec) return String.fromCodePoint(Number(dec));
    if (hex) return String.fromCodePoint(Number.parseInt(hex, 16));
    return { lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" }[name.toLowerCase()] ?? m;
  });

const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];

/**
 * exceljs drops a formula's cached value when it is falsy (0, "", FALSE). For the sheets where
 * that happens, read the cached `<v>` of the formula cells from the worksheet XML itself.
 */
function rawFormulaValues(files: Map<string, Uint8Array>, sheetName: string): Map<string, string> {
  const out = new Map<string, string>();
  const dec = new TextDecoder();
  const wbXml = files.get("xl/workbook.xml");
  const rels = files.get("xl/_rels/workbook.xml.rels");
  if (!wbXml || !rels) return out;
  const sheetTag = dec.decode(wbXml).match(/<sheet\s[^>]*>/g)?.find((t) => unescapeXml(attr(t, "name") ?? "") === sheetName);
  const rid = sheetTag && attr(sheetTag, "r:id");
  const relTag = rid && dec.decode(rels).match(/<Relationship\s[^>]*>/g)?.find((t) => attr(t, "Id") === rid);
  const target = relTag && attr(relTag, "Target");
  if (!target) return out;
  const part = target.startsWith("/") ? target.slice(1) : `xl/${target}`;
  const xml = files.get(part);
  if (!xml) return out;
  for (const m of dec.decode(xml).matchAll(/<c\s([^>]*?)(?:\/>|>([\s\S]*?)<\/c>)/g)) {
    const body = m[2];
    if (!body || !body.includes("<f")) continue;
    const ref = attr(` ${m[1]}`, "r");
    const v = /<v>([^<]*)<\/v>/.exec(body)?.[1];
    if (!ref || v === undefined) continue;
    const t = attr(` ${m[1]}`, "t");
    out.set(ref, t === "b" ? (v === "1" ? "TRUE" : "FALSE") : t === "str" || t === "e" ? unescapeXml(v) : v);
  }
  return out;
}

function sheetTable(ws: ExcelJS.Worksheet, files: Map<string, Uint8Array>): string {
  let raw: Map<string, string> | undefined;
  const rows = new Map<number, Map<number, string>>();
  const cols = new Set<number>();
  ws.eachRow({ includeEmpty: false }, (row, r) => {
    row.eachCell({ includeEmpty: false }, (c, col) => {
      if (c.isMerged && c.master && c.master.address !== c.address) return;
      let v = c.value;
      if (v && typeof v === "object" && ("formula" in v || "sharedFormula" in v) && (v as { result?: unknown }).result === undefined) {
        raw ??= rawFormulaValues(files, ws.name);
        const cached = raw.get(c.address);
        if (cached !== undefined) v = { ...(v as object), result: cached !== "" && Number.isFinite(Number(cached)) ? Number(cached) : cached } as CellValue;
      }
      const text = formatValue(v, c.numFmt).trim();
      if (text === "") return;
      let m = rows.get(r);
      if (!m) rows.set(r, (m = new Map()));
      m.set(col, text);
      cols.add(col);
    });
  });
  if (rows.size === 0) return "(empty sheet)";
  const colList = [...cols].sort((a, b) => a - b);
  const grid: string[][] = [["", ...colList.map(columnLetters)]];
  for (const r of [...rows.keys()].sort((a, b) => a - b)) {
    const m = rows.get(r)!;
    grid.push([String(r), ...colList.map((c) => m.get(c) ?? "")]);
  }
  return markdownTable(grid);
}

/** The parts exceljs holds as cells: the worksheets and the shared strings. */
const CELL_PARTS = /^xl\/(worksheets\/[^/]+\.xml|sharedStrings\.xml)$/i;
/** Worksheet and shared-string XML longdoc reads at most (by the sizes the ZIP declares). */
export const MAX_CELL_XML_BYTES = 32 * 1024 * 1024;
/** Cells longdoc reads at most: exceljs holds about 1.7 KB per cell (200,000 cells peaked at 405 MB). */
export const MAX_CELLS = 600_000;

export async function loadXlsx(bytes: Uint8Array, name: string, maxUncompressedBytes: number): Promise<{ text: string; sheets: string[] }> {
  // exceljs holds the whole workbook as objects: refuse what would not fit a worker before it runs.
  const entries = readZipDirectory(bytes) ?? [];
  const declared = (test: (n: string) => boolean) => entries.filter((e) => test(e.name)).reduce((n, e) => n + e.uncompressedSize, 0);
  const cellXml = declared((n) => CELL_PARTS.test(n));
  // Over the whole archive's cap, unzipBounded refuses it with that cap's message.
  if (cellXml > MAX_CELL_XML_BYTES && declared((n) => !SKIP_PARTS.test(n)) <= maxUncompressedBytes) {
    throw docError(
      "document_too_large",
      name,
      `its worksheets and shared strings declare ${formatBytes(cellXml)} of XML, over the ${formatBytes(MAX_CELL_XML_BYTES)} longdoc reads from an XLSX (the memory of one worker); not inflated`,
    );
  }
  const files = unzipBounded(bytes, name, { maxUncompressedBytes, keep: (n) => !SKIP_PARTS.test(n) });
  if (!files.has("xl/workbook.xml")) throw docError("document_corrupt", name, "not a valid XLSX: xl/workbook.xml is missing");
  const cells = countCells(files);
  if (cells > MAX_CELLS) {
    throw docError("document_too_large", name, `its worksheets have ${cells} cells, over the ${MAX_CELLS} longdoc reads from an XLSX (the memory of one worker); not extracted`);
  }
  const wb = new ExcelJS.Workbook();
  try {
    await wb.xlsx.load(Buffer.from(storedZip(files)) as unknown as ExcelJS.Buffer);
  } catch (e) {
    throw docError("document_corrupt", name, `damaged XLSX (${e instanceof Error ? e.message : String(e)})`, e);
  }
  const sheets: string[] = [];
  const parts: string[] = [];
  for (const ws of wb.worksheets) {
    sheets.push(ws.name);
    const state = ws.state === "veryHidden" ? " (very hidden)" : ws.state === "hidden" ? " (hidden)" : "";
    parts.push(`## Sheet: ${ws.name.trim()}${state}\n\n${sheetTable(ws, files)}`);
  }
  return { text: parts.join("\n\n"), sheets };
}

/** `<c …>` elements in the worksheets. */
function countCells(files: Map<string, Uint8Array>): number {
  let n = 0;
  for (const [part, data] of files) {
    if (!/^xl\/worksheets\/[^/]+\.xml$/i.test(part)) continue;
    for (let i = data.indexOf(0x3c); i >= 0; i = data.indexOf(0x3c, i + 1)) {
      const next = data[i + 2];
      if (data[i + 1] === 0x63 && (next === 0x20 || next === 0x3e || next === 0x2f)) n++;
    }
  }
  return n;
}
