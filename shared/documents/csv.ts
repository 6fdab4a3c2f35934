/**
 * CSV / TSV → one Markdown table (first row = header row).
 *
 * The delimiter is sniffed (comma, tab, semicolon or pipe: the one that splits the first lines
 * most consistently; `.tsv` means tab). Parsing is csv-parse with quotes (commas and newlines
 * inside quoted fields), CRLF or LF, a missing final newline, a BOM and ragged rows all accepted.
 * Embedded newlines become `<br>`, pipes are escaped. If the file cannot be parsed as CSV at all
 * (e.g. an unterminated quote), the text is passed through as is rather than refused.
 */
import { parse } from "csv-parse/sync";
import { markdownTable } from "./markdown.ts";
import { decodeTextFile } from "./text.ts";

const CANDIDATES = [",", "\t", ";", "|"] as const;

/** Count delimiters outside double quotes in each of the first lines. */
export function sniffDelimiter(text: string): string {
  const lines: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < text.length && lines.length < 20; i++) {
    const ch = text[i]!;
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === "\n" || ch === "\r")) {
      if (cur.trim()) lines.push(cur);
      cur = "";
      continue;
    }
    if (!quoted) cur += ch;
  }
  if (cur.trim() && lines.length < 20) lines.push(cur);
  let best: string = ",";
  let bestScore = 0;
  for (const d of CANDIDATES) {
    const counts = lines.map((l) => l.split(d).length - 1);
    const first = counts[0] ?? 0;
    if (first === 0) continue;
    const consistent = counts.filter((c) => c === first).length / counts.length;
    const score = first * consistent;
    if (score > bestScore) (best = d), (bestScore = score);
  }
  return best;
}

export function loadCsv(bytes: Uint8Array, name: string, opts: { tsv?: boolean; encoding?: string } = {}): { text: string; rows: number; encoding: string } {
  const { text, encoding } = decodeTextFile(bytes, name, { encoding: opts.encoding });
  const delimiter = opts.tsv ? "\t" : sniffDelimiter(text);
  let rows: string[][];
  try {
    rows = parse(text, {
      delimiter,
      bom: true,
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
    }) as string[][];
  } catch {
    return { text, rows: 0, encoding };
  }
  return { text: markdownTable(rows), rows: Math.max(0, rows.length - 1), encoding };
}
