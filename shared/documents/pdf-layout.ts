/**
 * Reading order for one PDF page, from pdf.js text items (string + position).
 *
 * Content streams draw text in any order (the IRS three-column instructions draw row by row
 * across all columns), so the items are laid out again from their positions with a recursive
 * XY-cut:
 *
 * - A region splits at a vertical gutter (an x-range no text crosses, at least 0.6 em wide) when
 *   the text on BOTH sides is prose set in a column (see proseColumn: long, full, evenly spaced
 *   lines of mostly letters). That separates newspaper-style columns, while a table (labels
 *   beside figures, names beside bios) stays whole, so each row keeps its cells on one line.
 * - Otherwise it splits at its widest horizontal gaps (a full-width heading above the columns,
 *   the space between paragraphs), top to bottom.
 * - What cannot be split is written as lines: items sharing a baseline (superscripts included)
 *   left to right, one space for a word gap and two for a wide gap (table columns); duplicate
 *   items drawn twice for fake bold are dropped.
 *
 * Rotated and vertical text (e.g. tategaki) is appended after the horizontal text, in content
 * order. A page that is mostly such text is written in content order.
 */

export interface PdfTextItem {
  str: string;
  transform: number[];
  width: number;
  height: number;
  dir?: string;
  hasEOL?: boolean;
}

interface Box {
  x0: number;
  x1: number;
  top: number;
  bot: number;
  base: number;
  size: number;
  str: string;
}

interface Line {
  boxes: Box[];
  top: number;
  bot: number;
  x0: number;
  x1: number;
  size: number;
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};

/** Text of one page, in reading order; blank lines between blocks. */
export function layoutPage(items: readonly PdfTextItem[], pageHeight: number): string {
  const boxes: Box[] = [];
  const others: PdfTextItem[] = [];
  let otherChars = 0;
  for (const it of items) {
    if (typeof it.str !== "string" || it.str === "") continue;
    const [a = 1, b = 0, c = 0, d = 1, e = 0, f = 0] = it.transform;
    const horizontal = a > 0 && Math.abs(b) <= Math.abs(a) * 0.02 && Math.abs(c) <= Math.abs(d) * 0.02 && it.dir !== "ttb";
    if (!horizontal) {
      others.push(it);
      otherChars += it.str.trim().length;
      continue;
    }
    if (it.str.trim() === "") continue; // spacing items: gaps are measured from positions instead
    const size = Math.abs(d) || it.height || 10;
    const base = pageHeight - f;
    boxes.push({ x0: e, x1: e + Math.max(it.width, 0), top: base - size * 0.75, bot: base + size * 0.2, base, size, str: it.str });
  }
  const boxChars = boxes.reduce((n, b) => n + b.str.length, 0);
  if (otherChars > boxChars) return contentOrder(items);
  const lines: Line[] = [];
  cut(boxes, lines);
  let text = renderLines(lines);
  if (others.length > 0) text += (text ? "\n\n" : "") + contentOrder(others);
  return text;
}

/** Items in content-stream order, a newline where pdf.js saw the end of a line. */
function contentOrder(items: readonly PdfTextItem[]): string {
  let s = "";
  for (const it of items) s += it.str + (it.hasEOL ? "\n" : "");
  return s.replace(/[ \t]+\n/g, "\n").trim();
}

/** Recursive XY-cut: appends the region's lines to `out` in reading order. */
function cut(boxes: Box[], out: Line[]): void {
  if (boxes.length === 0) return;
  const em = median(boxes.map((b) => b.size)) || 10;
  if (boxes.length > 1) {
    const v = verticalCut(boxes, em);
    if (v) {
      cut(v[0], out);
      cut(v[1], out);
      return;
    }
    const h = horizontalCuts(boxes, em);
    if (h) {
      for (const part of h) cut(part, out);
      return;
    }
  }
  for (const l of toLines(boxes)) out.push(l);
}

/** Merge x-intervals and return the gaps between them, widest first. */
function gaps(intervals: [number, number][], minGap: number): [number, number][] {
  intervals.sort((p, q) => p[0] - q[0]);
  const res: [number, number][] = [];
  let end = intervals[0]![1];
  for (let i = 1; i < intervals.length; i++) {
    const [s, e] = intervals[i]!;
    if (s - end >= minGap) res.push([end, s]);
    if (e > end) end = e;
  }
  return res;
}

/** Lines with a gap wider than 1.2 em between neighbouring items: table rows or several columns. */
function widelyGapped(lines: Line[], em: number): number {
  let n = 0;
  for (const l of lines) {
    for (let i = 1; i < l.boxes.length; i++) {
      if (l.boxes[i]!.x0 - l.boxes[i - 1]!.x1 > em * 1.2) {
        n++;
        break;
      }
    }
  }
  return n;
}

/** Mostly letters (not a column of figures). */
function lettersMostly(lines: Line[]): boolean {
  let letters = 0;
  let nonSpace = 0;
  for (const l of lines) {
    for (const b of l.boxes) {
      letters += (b.str.match(/\p{L}/gu) ?? []).length;
      nonSpace += b.str.replace(/\s/g, "").length;
    }
  }
  return nonSpace > 0 && letters / nonSpace >= 0.5;
}

/**
 * Prose set in a column, as opposed to one column of a table: at least three lines, mostly
 * letters, 24+ characters per line, lines filling most of the column's width (median at least
 * 65% of the widest), and lines packed at a regular leading (median pitch under 2 em). Label
 * columns of financial tables fail on length or fill, a column of names beside long bios on
 * pitch; newspaper-style columns pass.
 */
function proseColumn(lines: Line[], em: number): boolean {
  if (lines.length < 3 || !lettersMostly(lines)) return false;
  if (median(lines.map((l) => l.boxes.reduce((n, b) => n + b.str.trim().length + 1, -1))) < 24) return false;
  const widest = Math.max(...lines.map((l) => l.x1 - l.x0));
  if (median(lines.map((l) => l.x1 - l.x0)) < widest * 0.65) return false;
  const pitches: number[] = [];
  for (let i = 1; i < lines.length; i++) pitches.push(lines[i]!.top - lines[i - 1]!.top);
  return median(pitches) < em * 2;
}

/**
 * A text column: prose (see proseColumn) with no wide gaps inside its lines, or a region that
 * itself splits into such columns (the right-hand part of a three-column page).
 */
function columnLike(boxes: Box[], em: number, depth: number): boolean {
  const lines = toLines(boxes);
  if (lines.length < 3 || !lettersMostly(lines)) return false;
  if (widelyGapped(lines, em) <= lines.length * 0.2) return proseColumn(lines, em);
  return depth < 2 && findGutter(boxes, em, depth + 1) !== undefined;
}

function findGutter(boxes: Box[], em: number, depth: number): [Box[], Box[]] | undefined {
  const gs = gaps(
    boxes.map((b) => [b.x0, b.x1]),
    em * 0.6,
  );
  // Try gutters left to right; the first one with text columns on both sides wins.
  for (const [g0, g1] of gs) {
    const mid = (g0 + g1) / 2;
    const left = boxes.filter((b) => b.x1 <= mid);
    const right = boxes.filter((b) => b.x0 >= mid);
    if (left.length === 0 || right.length === 0) continue;
    if (columnLike(left, em, depth) && columnLike(right, em, depth)) return [left, right];
  }
  return undefined;
}

function verticalCut(boxes: Box[], em: number): [Box[], Box[]] | undefined {
  return findGutter(boxes, em, 0);
}

function horizontalCuts(boxes: Box[], em: number): Box[][] | undefined {
  const gs = gaps(
    boxes.map((b) => [b.top, b.bot]),
    0.01,
  );
  if (gs.length === 0) return undefined;
  const widest = Math.max(...gs.map(([a, b]) => b - a));
  // Split at every gap nearly as wide as the widest one (one level for evenly spaced lines).
  const cuts = gs.filter(([a, b]) => b - a >= widest * 0.8).map(([a, b]) => (a + b) / 2);
  cuts.sort((p, q) => p - q);
  const parts: Box[][] = cuts.map(() => []);
  parts.push([]);
  for (const b of boxes) {
    const mid = (b.top + b.bot) / 2;
    let i = 0;
    while (i < cuts.length && mid > cuts[i]!) i++;
    parts[i]!.push(b);
  }
  const nonEmpty = parts.filter((p) => p.length > 0);
  if (nonEmpty.length < 2) return undefined;
  void em;
  return nonEmpty;
}

/** Group boxes into lines: same baseline, or vertically inside each other (superscripts). */
function toLines(boxes: Box[]): Line[] {
  const sorted = [...boxes].sort((p, q) => p.base - q.base || p.x0 - q.x0);
  const lines: Line[] = [];
  for (const b of sorted) {
    let target: Line | undefined;
    // Only the last few lines can still overlap this box vertically.
    for (let i = lines.length - 1; i >= 0 && i >= lines.length - 3; i--) {
      const l = lines[i]!;
      const overlap = Math.min(l.bot, b.bot) - Math.max(l.top, b.top);
      const smaller = Math.min(l.bot - l.top, b.bot - b.top);
      if (overlap >= smaller * 0.6) {
        target = l;
        break;
      }
    }
    if (target) {
      target.boxes.push(b);
      target.x0 = Math.min(target.x0, b.x0);
      target.x1 = Math.max(target.x1, b.x1);
      if (b.size >= target.size) {
        target.top = Math.min(target.top, b.top);
        target.bot = Math.max(target.bot, b.bot);
        target.size = b.size;
      }
    } else lines.push({ boxes: [b], top: b.top, bot: b.bot, x0: b.x0, x1: b.x1, size: b.size });
  }
  for (const l of lines) l.boxes.sort((p, q) => p.x0 - q.x0);
  lines.sort((p, q) => p.top - q.top);
  return lines;
}

function renderLines(lines: Line[]): string {
  const out: string[] = [];
  let prev: Line | undefined;
  for (const l of lines) {
    let s = "";
    let last: Box | undefined;
    for (const b of l.boxes) {
      if (last) {
        // Fake bold / shadow: the same string drawn again almost on top of itself.
        if (b.str === last.str && Math.abs(b.x0 - last.x0) < b.size * 0.3) continue;
        const gap = b.x0 - last.x1;
        const em = Math.max(b.size, last.size);
        const spaced = /\s$/.test(s) || /^\s/.test(b.str);
        if (gap > em * 1.5) s = s.replace(/\s+$/, "") + "  ";
        else if (gap > em * 0.12 && !spaced) s += " ";
      }
      s += b.str;
      last = b;
    }
    s = s.replace(/\s+$/, "");
    // A blank line between paragraphs, and where reading moves up to the next column.
    if (prev && (l.top - prev.bot > Math.max(l.size, prev.size) * 0.7 || l.bot < prev.top)) out.push("");
    out.push(s);
    prev = l;
  }
  return out.join("\n");
}
