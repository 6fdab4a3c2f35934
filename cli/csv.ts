// RFC 4180 CSV, written by hand: the project's CSV dependency (csv-parse) only reads, and the
// rules for writing are few. Every field is quoted when it holds a comma, a quote, CR or LF (a
// quote inside is doubled); records end with CRLF.

import type { Cell } from "../shared/run/flatten.ts";

export type { Cell };

/**
 * Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or CR first) gets a leading
 * apostrophe: model answers and document names are not trusted to be inert. Numbers are left alone.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export function csvField(value: Cell): string {
  if (value === null || value === undefined) return "";
  let text = typeof value === "string" ? value : String(value);
  if (typeof value === "string" && FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvRecord = (cells: Cell[]): string => cells.map(csvField).join(",") + "\r\n";

/** A header and rows as one CSV text (UTF-8, no BOM). */
export const csvText = (header: string[], rows: Cell[][]): string => csvRecord(header) + rows.map(csvRecord).join("");
