import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument, isNode, visit, type Document } from "yaml";
import type { z } from "zod";
import { LongdocError } from "../errors.ts";
import { jobSpecSchema, type JobSpec } from "./schema.ts";

/** One problem in a job file, printed as `file:line: field: message`. */
export interface JobProblem {
  file: string;
  line: number;
  field: string;
  message: string;
}

export const formatProblem = (p: JobProblem) => `${p.file}:${p.line}: ${p.field}: ${p.message}`;

export class JobFileError extends LongdocError {
  readonly problems: JobProblem[];
  constructor(problems: JobProblem[]) {
    super("job_invalid", problems.map(formatProblem).join("\n"));
    this.problems = problems;
  }
}

/** Parses and validates job YAML text; `file` is only used in messages. */
export function parseJobText(text: string, file: string): JobSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new JobFileError(
      doc.errors.map((e) => ({
        file,
        line: lines.linePos(e.pos[0]).line,
        field: "(yaml)",
        message: e.message.split("\n")[0] ?? e.message,
      })),
    );
  }
  let raw: unknown;
  try {
    // Aliases that expand without bound (a "billion laughs" file) are refused, not expanded.
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const excessive = /alias/i.test(message);
    throw new JobFileError([
      {
        file,
        line: excessive ? firstAliasLine(doc, lines) : 1,
        field: "(yaml)",
        message: excessive ? `aliases expand too far (more than ${MAX_ALIAS_COUNT} alias uses); a job file needs no anchors or aliases` : message.split("\n")[0]!,
      },
    ]);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new JobFileError([{ file, line: 1, field: "(file)", message: "a job file must be a YAML mapping of fields" }]);
  }
  const result = jobSpecSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const found = result.error.issues.flatMap((issue) => toProblems(issue, doc, lines, file));
    throw new JobFileError(found.sort((a, b) => a.line - b.line));
  }
  return result.data;
}

/** Alias uses allowed while converting a job file (the yaml package's own default). */
const MAX_ALIAS_COUNT = 100;

/** The line of the first alias (`*name`) in the file, else 1. */
function firstAliasLine(doc: Document, lines: LineCounter): number {
  let line = 1;
  visit(doc, {
    Alias(_, node) {
      if (node.range) line = lines.linePos(node.range[0]).line;
      return visit.BREAK;
    },
  });
  return line;
}

export async function loadJobFile(file: string): Promise<JobSpec> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new JobFileError([{ file, line: 1, field: "(file)", message: `cannot read the job file (${(cause as NodeJS.ErrnoException).code ?? cause})` }]);
  }
  return parseJobText(text, file);
}

function toProblems(issue: z.core.$ZodIssue, doc: Document, lines: LineCounter, file: string): JobProblem[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({
      file,
      line: lineOf(doc, lines, [...path, key], true),
      field: fieldName([...path, key]),
      message: "unknown field" + suggestion(key),
    }));
  }
  return [{ file, line: lineOf(doc, lines, path, false), field: fieldName(path) || "(file)", message: describe(issue) }];
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type") {
    return issue.input === undefined ? "is required" : `expected ${issue.expected}, got ${typeName(issue.input)}`;
  }
  if (issue.code === "invalid_union") return "must be `path: <file or glob>` or `s3: s3://bucket/prefix/`";
  if (issue.code === "invalid_value") return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  return issue.message;
}

const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "list" : typeof v);

const fieldName = (path: (string | number)[]) =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");

const KNOWN = ["name", "description", "documents", "system", "questions", "prompt", "model", "thinking", "maxOutputTokens",
  "output", "packing", "truncate", "limits", "schedule", "trigger", "enabled", "budget", "format", "schema", "schemaFile",
  "concurrency", "rpm", "tpm", "maxCostUsd", "maxDocumentBytes", "path", "s3", "id", "ask", "calls", "cache"];

function suggestion(key: string): string {
  const close = KNOWN.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return close && close !== key ? ` (did you mean '${close}'?)` : "";
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** The 1-based line of the deepest node on `path` that exists (the key itself for unknown keys). */
function lineOf(doc: Document, lines: LineCounter, path: (string | number)[], wantKey: boolean): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const sub = path.slice(0, depth);
    if (wantKey && depth === path.length && depth > 0) {
      const parent = sub.length > 1 ? doc.getIn(sub.slice(0, -1), true) : doc.contents;
      const pair = (parent as { items?: { key: unknown }[] } | null)?.items?.find(
        (it) => isNode(it.key) && (it.key as { value?: unknown }).value === sub[sub.length - 1],
      );
      const range = pair && isNode(pair.key) ? pair.key.range : undefined;
      if (range) return lines.linePos(range[0]).line;
      continue;
    }
    const node = depth === 0 ? doc.contents : doc.getIn(sub, true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return 1;
}
