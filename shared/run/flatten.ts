/** A cell of a flattened answer: what a spreadsheet or an HTML table shows. */
export type Cell = string | number | boolean | null | undefined;

/**
 * Flattens a JSON answer into `answer.<path>` cells: nested objects by dotted path, every array
 * (of numbers or of objects) as its JSON text in one cell, so each item stays one row. Used by
 * `results --format csv` and by report.html's answer table.
 */
export function flattenAnswer(value: unknown, prefix = "answer", out = new Map<string, Cell>()): Map<string, Cell> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) out.set(prefix, "{}");
    for (const [k, v] of entries) flattenAnswer(v, `${prefix}.${k}`, out);
  } else if (Array.isArray(value)) {
    out.set(prefix, JSON.stringify(value));
  } else {
    out.set(prefix, value as Cell);
  }
  return out;
}

/** The columns of many flattened answers, in the order fields are first seen. */
export function answerColumns(rows: Iterable<Map<string, Cell>>): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const k of row.keys()) seen.add(k);
  return [...seen];
}
