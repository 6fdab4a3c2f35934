/** Markdown table rendering shared by the HTML/DOCX, CSV and XLSX loaders. */

/** One cell's text made safe for a Markdown table row: no pipes, no line breaks. */
export function cell(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/[ \t\u00a0]+/g, " ")
    .trim()
    .replace(/ *\n+ */g, "<br>")
    .replace(/\|/g, "\\|");
}

/**
 * A GitHub-style Markdown table. The first row is the header row; shorter rows are padded.
 * Cells are escaped with `cell()` unless `escaped` is set (already escaped by the caller).
 */
export function markdownTable(rows: readonly (readonly string[])[], opts: { escaped?: boolean } = {}): string {
  const width = rows.reduce((m, r) => Math.max(m, r.length), 0);
  if (width === 0 || rows.length === 0) return "";
  const line = (r: readonly string[]) => {
    const cells: string[] = [];
    for (let i = 0; i < width; i++) {
      const v = r[i] ?? "";
      cells.push(opts.escaped ? v : cell(v));
    }
    return `| ${cells.join(" | ")} |`;
  };
  const out = [line(rows[0]!), `|${"---|".repeat(width)}`];
  for (let i = 1; i < rows.length; i++) out.push(line(rows[i]!));
  return out.join("\n");
}
