/**
 * HTML → readable text (also the second half of the DOCX route: mammoth gives HTML).
 *
 * - Dropped: <head> (the <title> is kept as a first line `Title: ...`), <script>, <style>,
 *   <noscript>, <template>, <svg>, <iframe>/<object>/<embed>/<canvas>, and every element that is
 *   hidden with the `hidden` attribute or an inline `display:none` (the iXBRL header, for one).
 * - Block elements end a line; paragraphs, headings, lists and tables are separated by a
 *   blank line. Inside ordinary text, runs of whitespace (NBSP included) become one space, and
 *   adjacent inline elements join without a space (so words split across spans stay whole).
 * - Headings become Markdown `#` headings, list items `- ` / `1. ` (nested lists indented by two
 *   spaces), <pre> keeps its whitespace, and <br> is a line break. Images are
 *   left out (alt text included: in practice it is mostly site chrome or auto-generated).
 * - Tables become Markdown tables: colspan/rowspan are expanded into empty cells, rows and
 *   columns that are empty throughout are dropped, a lone currency-symbol cell is joined to the
 *   number after it and a lone `)` or `%` to the number before it (the SEC filing layout), and a
 *   "table" of a single row or column (layout tables) is written as plain lines instead. A cell's
 *   own line breaks become `<br>`; a table nested in a cell is flattened into that cell.
 */
import { Parser } from "htmlparser2";
import { useLinearStacks } from "./html-stack.ts";
import { cell as escapeCell, markdownTable } from "./markdown.ts";

const SKIP = new Set(["head", "script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "canvas", "title", "datalist"]);
const BLOCK1 = new Set([
  "div", "li", "dt", "dd", "tr", "option", "header", "footer", "nav", "main", "aside", "section", "article",
  "address", "center", "details", "summary", "dialog", "fieldset", "legend", "form", "menu", "hgroup",
  "figure", "figcaption", "caption", "body", "html", "dir", "frameset", "frame", "label",
]);
const BLOCK2 = new Set(["p", "blockquote", "pre", "ul", "ol", "dl", "table", "hr"]);
const HEADING = /^h([1-6])$/;

/** Accumulates one flow of text: the document, or one table cell. */
class Writer {
  private parts: string[] = [];
  private pendingBreak = 0; // 0 none, 1 newline, 2 blank line
  private pendingSpace = false;
  private atStart = true;
  private lineStart = true;
  /** First-line prefix of the next line (a list bullet), then `indent` for the following lines. */
  bullet: string | null = null;
  indent = "";

  block(n: 1 | 2): void {
    if (n > this.pendingBreak) this.pendingBreak = n;
    this.pendingSpace = false;
  }

  /** <br>: a line break even where one is already pending (two make a blank line). */
  lineBreak(): void {
    if (this.atStart) return;
    this.pendingBreak = this.pendingBreak >= 1 ? 2 : 1;
    this.pendingSpace = false;
  }

  private flushBreak(): void {
    if (this.pendingBreak > 0 && !this.atStart) {
      this.parts.push(this.pendingBreak === 2 ? "\n\n" : "\n");
      this.lineStart = true;
    }
    this.pendingBreak = 0;
    if (this.lineStart) {
      if (this.bullet !== null) {
        this.parts.push(this.bullet);
        this.bullet = null;
      } else if (this.indent) this.parts.push(this.indent);
      this.lineStart = false;
      this.pendingSpace = false;
    }
  }

  /** Ordinary (whitespace-collapsing) text. */
  text(raw: string): void {
    const s = raw.replace(/[\s\u00a0]+/g, " ");
    if (s === "") return;
    const continuing = !this.atStart && this.pendingBreak === 0 && !this.lineStart;
    if (s === " ") {
      if (continuing) this.pendingSpace = true;
      return;
    }
    if (s.startsWith(" ") && continuing) this.pendingSpace = true;
    this.flushBreak();
    if (this.pendingSpace) this.parts.push(" ");
    this.parts.push(s.trim());
    this.atStart = false;
    this.pendingSpace = s.endsWith(" ");
  }

  /** Set when a <pre> opens: HTML drops a newline right after the tag. */
  preFresh = false;

  /** Text kept as is (inside <pre>; NBSP still becomes a space). */
  pre(raw: string): void {
    let t = raw.replace(/\r\n?/g, "\n").replace(/\u00a0/g, " ");
    if (this.preFresh && t !== "") {
      if (t.startsWith("\n")) t = t.slice(1);
      this.preFresh = false;
    }
    const lines = t.split("\n");
    lines.forEach((line, i) => {
      if (i > 0 && !this.atStart) {
        this.flushBreak();
        this.parts.push("\n");
        this.lineStart = true;
      }
      if (line !== "") {
        this.flushBreak();
        if (this.pendingSpace) this.parts.push(" ");
        this.pendingSpace = false;
        this.parts.push(line);
        this.atStart = false;
      }
    });
  }

  /** A pre-rendered block (a table) on its own lines. */
  raw(s: string): void {
    if (!s) return;
    this.block(2);
    const b = this.bullet;
    this.bullet = null;
    const ind = this.indent;
    this.indent = "";
    this.flushBreak();
    this.parts.push(s);
    this.atStart = false;
    this.bullet = b;
    this.indent = ind;
    this.block(2);
  }

  get empty(): boolean {
    return this.atStart;
  }

  finish(): string {
    return this.parts.join("");
  }
}

interface CellBuf {
  w: Writer;
  colspan: number;
  rowspan: number;
}

class TableBuilder {
  rows: CellBuf[][] = [];
  row: CellBuf[] | null = null;
  cell: CellBuf | null = null;
  caption: Writer | null = null;

  startRow(): void {
    this.endRow();
    this.row = [];
  }
  endRow(): void {
    this.endCell();
    if (this.row) this.rows.push(this.row);
    this.row = null;
  }
  startCell(attrs: Record<string, string>): Writer {
    this.endCell();
    if (!this.row) this.row = [];
    const span = (v: string | undefined) => {
      const n = Number.parseInt(v ?? "1", 10);
      return Number.isFinite(n) && n >= 1 ? Math.min(n, 1000) : 1;
    };
    this.cell = { w: new Writer(), colspan: span(attrs.colspan), rowspan: span(attrs.rowspan) };
    this.row.push(this.cell);
    return this.cell.w;
  }
  endCell(): void {
    this.cell = null;
  }

  /** The grid of cell texts, spans expanded; `spans` lists the cells that had colspan > 1. */
  grid(): Grid {
    this.endRow();
    const out: string[][] = [];
    const spans: Span[] = [];
    const carry: number[] = []; // per column: rows still covered by a rowspan from above
    for (const r of this.rows) {
      const line: string[] = [];
      let col = 0;
      const place = (v: string) => {
        line[col] = v;
        col++;
      };
      const skipCarried = () => {
        while ((carry[col] ?? 0) > 0) {
          carry[col]!--;
          place("");
        }
      };
      for (const c of r) {
        skipCarried();
        const text = c.w.finish().trim();
        if (c.colspan > 1 && text) spans.push({ row: out.length, col, n: c.colspan });
        for (let k = 0; k < c.colspan; k++) {
          if (c.rowspan > 1) carry[col] = c.rowspan - 1;
          place(k === 0 ? text : "");
        }
      }
      // Rowspans from above that extend past this row's last cell.
      for (let k = col; k < carry.length; k++) {
        if ((carry[k] ?? 0) > 0) {
          carry[k]!--;
          line[k] = "";
        }
      }
      for (let k = 0; k < line.length; k++) line[k] ??= "";
      out.push(line);
    }
    return { cells: out, spans };
  }
}

interface Span {
  row: number;
  col: number;
  n: number;
}
export interface Grid {
  cells: string[][];
  /** Cells that spanned several columns (their text sits in the first one). */
  spans?: Span[];
}

const CURRENCY = /^[$€£¥₹]$|^(US\$|USD|EUR|CHF)$/;
const CLOSER = /^(\)|%|\)%|%\))$/;

/** Tidy a table grid: see the module comment. Returns escaped cells. */
export function tidyGrid(grid: Grid): string[][] {
  let rows = grid.cells.map((r) => r.map((c) => escapeCell(c)));
  for (const r of rows) {
    for (let i = 0; i < r.length; i++) {
      if (CURRENCY.test(r[i]!)) {
        let j = i + 1;
        while (j < r.length && r[j] === "") j++;
        if (j < r.length && /^\(?[\d.,]+/.test(r[j]!)) {
          r[j] = `${r[i]}${r[j]}`;
          r[i] = "";
        }
      } else if (CLOSER.test(r[i]!)) {
        let j = i - 1;
        while (j >= 0 && r[j] === "") j--;
        if (j >= 0 && /[\d.]$/.test(r[j]!)) {
          r[j] = `${r[j]}${r[i]}`;
          r[i] = "";
        }
      }
    }
  }
  // A header spanning several columns goes over the one of them that holds the data, so the
  // empty ones can be dropped ("2021" over its figures, not over the "$" column).
  for (const sp of grid.spans ?? []) {
    const r = rows[sp.row]!;
    const text = r[sp.col] ?? "";
    if (!text) continue;
    let best = sp.col;
    let bestCount = -1;
    for (let c = sp.col; c < sp.col + sp.n; c++) {
      let count = 0;
      for (let i = 0; i < rows.length; i++) if (i !== sp.row && (rows[i]![c] ?? "") !== "") count++;
      if (count > bestCount) (best = c), (bestCount = count);
    }
    if (best !== sp.col && (r[best] ?? "") === "") {
      r[best] = text;
      r[sp.col] = "";
    }
  }
  rows = rows.filter((r) => r.some((c) => c !== ""));
  const width = rows.reduce((m, r) => Math.max(m, r.length), 0);
  const keep: number[] = [];
  for (let c = 0; c < width; c++) if (rows.some((r) => (r[c] ?? "") !== "")) keep.push(c);
  return rows.map((r) => keep.map((c) => r[c] ?? ""));
}

/** Render a table grid: Markdown when it has at least two rows and two columns, else plain lines. */
export function renderGrid(grid: Grid): { text: string; isTable: boolean } {
  const rows = tidyGrid(grid);
  if (rows.length === 0) return { text: "", isTable: false };
  const width = rows[0]!.length;
  if (rows.length < 2 || width < 2) {
    return { text: rows.map((r) => r.filter((c) => c !== "").join(" ").replace(/\\\|/g, "|")).join("\n"), isTable: false };
  }
  return { text: markdownTable(rows, { escaped: true }), isTable: true };
}

export interface HtmlText {
  text: string;
  title?: string;
  /** Markdown tables written. */
  tables: number;
}

interface Frame {
  tag: string;
  skip: boolean;
  table?: TableBuilder;
  list?: { ordered: boolean; n: number };
  heading?: boolean;
  pre?: boolean;
  indent?: string;
}

function isHidden(attrs: Record<string, string>): boolean {
  if (attrs.hidden !== undefined) return true;
  const style = attrs.style;
  return style !== undefined && /(^|;)\s*display\s*:\s*none\s*(!important\s*)?(;|$)/i.test(style);
}

/** Convert an HTML string to text (see the module comment). */
export function htmlToText(html: string, opts: { xhtml?: boolean } = {}): HtmlText {
  const root = new Writer();
  const stack: Frame[] = [];
  const tables: TableBuilder[] = [];
  let skipDepth = 0;
  let preDepth = 0;
  let title = "";
  let inTitle = 0;
  let titleSeen = false;
  let tableCount = 0;
  // The writer that text currently goes to: the innermost open table cell, or the document.
  const writers: Writer[] = [root];
  const cur = () => writers[writers.length - 1]!;
  // The open lists, innermost last: kept apart from `stack` so their depth costs nothing to read.
  const lists: NonNullable<Frame["list"]>[] = [];
  const listDepth = () => lists.length;

  const parser = new Parser(
    {
      onopentag(tag, attrs) {
        const frame: Frame = { tag, skip: false };
        stack.push(frame);
        if (tag === "title" && !titleSeen && !stack.some((f) => f.tag === "svg")) {
          titleSeen = true;
          inTitle = stack.length;
        }
        if (skipDepth > 0 || SKIP.has(tag) || isHidden(attrs)) {
          frame.skip = true;
          skipDepth++;
          return;
        }
        const w = cur();
        const h = HEADING.exec(tag);
        if (h) {
          w.block(2);
          frame.heading = true;
          // Headings inside table cells stay plain text.
          if (tables.length === 0) w.text(`${"#".repeat(Number(h[1]))} `);
          return;
        }
        switch (tag) {
          case "br":
            w.lineBreak();
            return;
          case "pre":
            w.block(2);
            frame.pre = true;
            preDepth++;
            w.preFresh = true;
            return;
          case "ul":
          case "ol":
          case "menu": {
            const start = Number.parseInt(attrs.start ?? "1", 10);
            frame.list = { ordered: tag === "ol", n: Number.isFinite(start) ? start : 1 };
            lists.push(frame.list);
            w.block(listDepth() > 1 ? 1 : 2);
            return;
          }
          case "li": {
            w.block(1);
            const list = lists[lists.length - 1];
            const depth = Math.max(0, listDepth() - 1);
            const pad = "  ".repeat(depth);
            const bullet = list?.ordered ? `${list.n++}. ` : "- ";
            frame.indent = w.indent;
            w.bullet = pad + bullet;
            w.indent = pad + " ".repeat(bullet.length);
            return;
          }
          case "table": {
            const t = new TableBuilder();
            frame.table = t;
            tables.push(t);
            return;
          }
          case "caption": {
            const t = tables[tables.length - 1];
            if (t) {
              t.caption = new Writer();
              writers.push(t.caption);
            }
            return;
          }
          case "tr": {
            tables[tables.length - 1]?.startRow();
            return;
          }
          case "td":
          case "th": {
            const t = tables[tables.length - 1];
            if (t) writers.push(t.startCell(attrs));
            return;
          }
        }
        if (BLOCK2.has(tag)) w.block(2);
        else if (BLOCK1.has(tag)) w.block(1);
      },
      ontext(data) {
        if (inTitle > 0) {
          title += data;
          return;
        }
        if (skipDepth > 0) return;
        if (preDepth > 0) cur().pre(data);
        else cur().text(data);
      },
      onclosetag(tag) {
        // htmlparser2 closes implied elements itself; be defensive about mismatches anyway.
        let idx = stack.length - 1;
        while (idx >= 0 && stack[idx]!.tag !== tag) idx--;
        if (idx < 0) return;
        while (stack.length > idx) closeFrame(stack.pop()!);
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true, recognizeSelfClosing: opts.xhtml ?? false, recognizeCDATA: opts.xhtml ?? false },
  );

  function closeFrame(frame: Frame): void {
    if (inTitle > 0 && stack.length < inTitle) inTitle = 0;
    if (frame.list) lists.pop();
    if (frame.skip) {
      skipDepth--;
      return;
    }
    const w = cur();
    if (frame.heading) {
      w.block(2);
      return;
    }
    switch (frame.tag) {
      case "pre":
        preDepth--;
        w.block(2);
        return;
      case "li":
        w.block(1);
        w.bullet = null;
        w.indent = frame.indent ?? "";
        return;
      case "ul":
      case "ol":
      case "menu":
        w.block(listDepth() > 0 ? 1 : 2);
        return;
      case "caption": {
        const t = tables[tables.length - 1];
        if (t?.caption && cur() === t.caption) writers.pop();
        return;
      }
      case "td":
      case "th": {
        const t = tables[tables.length - 1];
        if (t?.cell && cur() === t.cell.w) writers.pop();
        t?.endCell();
        return;
      }
      case "tr":
        tables[tables.length - 1]?.endRow();
        return;
      case "table": {
        const t = frame.table;
        if (!t) return;
        tables.pop();
        // A cell left open by sloppy markup.
        while (writers.length > 1 && t.cell && cur() === t.cell.w) writers.pop();
        const caption = t.caption?.finish().trim();
        const { text, isTable } = renderGrid(t.grid());
        const out = cur();
        if (tables.length > 0) {
          // Nested table: flatten into the enclosing cell.
          if (caption) out.text(` ${caption} `);
          for (const line of text.split("\n")) {
            if (line) {
              out.text(line);
              out.lineBreak();
            }
          }
          return;
        }
        if (caption) {
          out.block(2);
          out.text(caption);
        }
        if (isTable) tableCount++;
        if (isTable) out.raw(text);
        else if (text) {
          out.block(2);
          text.split("\n").forEach((line, i) => {
            if (i > 0) out.block(1);
            out.text(line);
          });
          out.block(2);
        }
        return;
      }
    }
    if (BLOCK2.has(frame.tag)) w.block(2);
    else if (BLOCK1.has(frame.tag)) w.block(1);
  }

  useLinearStacks(parser);
  parser.write(html);
  parser.end();
  while (stack.length > 0) closeFrame(stack.pop()!);

  let text = root.finish();
  const t = title.replace(/[\s\u00a0]+/g, " ").trim();
  if (t) text = `Title: ${t}\n\n${text}`;
  return t ? { text, title: t, tables: tableCount } : { text, tables: tableCount };
}

/** The charset an HTML document declares (BOM aside), from <meta> or the XML declaration. */
export function declaredCharset(bytes: Uint8Array): string | undefined {
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, 4096));
  const m =
    /<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head) ??
    /<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)["']/i.exec(head);
  return m?.[1];
}
