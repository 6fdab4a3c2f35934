import { stringify } from "csv-stringify/sync";
import type { Cell } from "../shared/run/flatten.ts";

export type { Cell };

/**
 * Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or CR first) gets a leading
 * apostrophe: model answers and document names are not trusted to be inert. Numbers are left alone.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
const defuse = (value: Cell): Cell => (typeof value === "string" && FORMULA_START.test(value) ? `'${value}` : value);

/**
 * A header and rows as one RFC 4180 CSV text (csv-stringify; CRLF records, UTF-8 without a BOM).
 * csv-stringify quotes a field holding the record delimiter, but not a lone CR or LF: those are
 * quoted too, so every reader sees one record per row.
 */
export const csvText = (header: string[], rows: Cell[][]): string =>
  stringify([header.map(defuse), ...rows.map((r) => r.map(defuse))], { record_delimiter: "windows", quoted_match: /[\r\n]/, cast: { boolean: (b) => String(b) } });
