import { open } from "node:fs/promises";
import path from "node:path";
import { LineCounter, parseDocument, isNode, isScalar, visit, type Document } from "yaml";
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
  // A file that is plainly something else (a document, an OpenAI Batch file, JSON Lines) gets
  // one message saying so, not every complaint of the YAML parser or the schema.
  const before = notAJob.beforeParse(text, file);
  if (before) throw new JobFileError([{ file, line: 1, field: "(file)", message: before }]);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const unlike = notAJob.afterYamlErrors(text, file, doc.errors.length, lines.linePos(doc.errors[0]!.pos[0]).line, doc.errors[0]!.message.split("\n")[0]!);
    if (unlike) throw new JobFileError([{ file, line: 1, field: "(file)", message: unlike }]);
    throw new JobFileError(
      doc.errors.map((e) => ({
        file,
        line: lines.linePos(e.pos[0]).line,
        field: "(yaml)",
        message: e.message.split("\n")[0] ?? e.message,
      })),
    );
  }
  const merges = mergeKeyLines(doc, lines);
  if (merges.length > 0) {
    throw new JobFileError(
      merges.map((line) => ({ file, line, field: "<<", message: "a YAML merge key, which job files do not take (YAML 1.2 has no merge keys); write the fields out where they are needed" })),
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
  const unlike = notAJob.afterParse(raw, file);
  if (unlike) throw new JobFileError([{ file, line: 1, field: "(file)", message: unlike }]);
  const result = jobSpecSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const found = result.error.issues.flatMap((issue) => toProblems(issue, doc, lines, file));
    throw new JobFileError(found.sort((a, b) => a.line - b.line));
  }
  return result.data;
}

/** Lines of the plain `<<` keys (YAML 1.1 merge keys), which YAML 1.2 reads as a key named "<<". */
function mergeKeyLines(doc: Document, lines: LineCounter): number[] {
  const out: number[] = [];
  visit(doc, {
    Pair(_, pair) {
      const key = pair.key;
      if (isScalar(key) && key.value === "<<" && key.type === "PLAIN" && key.range) out.push(lines.linePos(key.range[0]).line);
    },
  });
  return out;
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

/** Job files are a few KB; past this, only the start is read, to say what the file is. */
const MAX_JOB_FILE_BYTES = 1024 * 1024;

export async function loadJobFile(file: string): Promise<JobSpec> {
  let text: string;
  let size: number;
  try {
    const handle = await open(file, "r");
    try {
      size = (await handle.stat()).size;
      const buffer = Buffer.alloc(Math.min(size, MAX_JOB_FILE_BYTES));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      text = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch (cause) {
    throw new JobFileError([{ file, line: 1, field: "(file)", message: `cannot read the job file (${(cause as NodeJS.ErrnoException).code ?? cause})` }]);
  }
  if (size > MAX_JOB_FILE_BYTES) {
    // Whole lines only, so JSON Lines are recognised; their count is then a lower bound.
    const what = notAJob.beforeParse(text.slice(0, text.lastIndexOf("\n") + 1) || text, file, true);
    throw new JobFileError([{ file, line: 1, field: "(file)", message: what ?? notAJob.tooLarge(size) }]);
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
  "concurrency", "rpm", "tpm", "maxCostUsd", "maxCost", "maxDocumentBytes", "path", "s3", "id", "ask", "calls", "cache", "notify", "webhook",
  "samples", "minAgreement", "numericTolerance", "absolute", "relative", "tools", "toolChoice", "maxToolRounds", "judge"];

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

// ---------------------------------------------------------------------------------------------
// Files that are not job files: one message saying what the file looks like and what longdoc
// expects, instead of every complaint of the YAML parser or the schema.

const EXPECTS =
  "longdoc expects a YAML job file: a mapping with name, documents (path: or s3: sources) and questions or prompt " +
  "(see jobs/examples/annual-reports.yaml; `longdoc schema` prints every field)";

const AS_DOCUMENT = "to have longdoc read it, list it in a job file under documents: (- path: <file>)";

/** Fields only a job file has; a mapping with one of them is an attempt at a job. */
const JOB_MARKERS = ["documents", "questions", "prompt"];

const DOCUMENT_EXTENSIONS: Record<string, string> = {
  ".pdf": "a PDF document",
  ".docx": "a Word document (DOCX)",
  ".xlsx": "an Excel workbook (XLSX)",
  ".csv": "a CSV table",
  ".md": "a Markdown document",
  ".txt": "a text document",
  ".html": "an HTML page",
  ".htm": "an HTML page",
};

type Json = Record<string, unknown>;
const isRecord = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);
const listKeys = (keys: string[]) => (keys.length <= 1 ? keys.join("") : `${keys.slice(0, -1).join(", ")} and ${keys[keys.length - 1]}`);

/** "1 request", "3 requests", or when only the start of a file was read "at least 7000 requests". */
const counter = (n: number, partial: boolean) => (one: string, many: string) => (partial ? `at least ${n} ${many}` : n === 1 ? `1 ${one}` : `${n} ${many}`);

/** What a set of records (JSON Lines, or one JSON/YAML mapping) is, from the first one's fields. */
function describeRecords(records: Json[], container: string, partial = false): string {
  return recognise(records, container, partial) ?? unknownRecords(records, container, partial);
}

/** A known format that is not a job (OpenAI Batch input or output, a chat request, a JSON Schema), or null. */
function recognise(records: Json[], container: string, partial = false): string | null {
  const first = records[0]!;
  const count = counter(records.length, partial);
  if ("custom_id" in first && ("body" in first || "method" in first || "url" in first)) {
    return (
      `this looks like an OpenAI Batch input file (${container}: ${count("request", "requests")} with ${listKeys(Object.keys(first))}), not a longdoc job file. ` +
      `\`longdoc run\`, \`estimate\`, \`submit\` and \`validate\` take it as it is (each line one item); a scheduled or upload job must be YAML. ${EXPECTS}`
    );
  }
  if ("custom_id" in first && ("response" in first || "error" in first)) {
    return `this looks like an OpenAI Batch output file (${container}: ${count("result", "results")}, as \`longdoc results --format jsonl\` writes), not a longdoc job file. ${EXPECTS}`;
  }
  if ("messages" in first) {
    return `this looks like a chat completions request (${container} with ${listKeys(Object.keys(first))}), not a longdoc job file. ${EXPECTS}`;
  }
  if ("$schema" in first || ("type" in first && "properties" in first)) {
    return `this looks like a JSON Schema, not a longdoc job file; to check JSON answers against it, name it in a job as output: { format: json, schemaFile: <file> }. ${EXPECTS}`;
  }
  return null;
}

function unknownRecords(records: Json[], container: string, partial = false): string {
  const count = counter(records.length, partial);
  const fields = Object.keys(jobSpecSchema.shape);
  const foreign = Object.keys(records[0]!).filter((k) => !fields.includes(k));
  const shown = foreign.length > 6 ? `${foreign.slice(0, 6).join(", ")}...` : listKeys(foreign);
  return `this is ${container === "JSON Lines" ? `JSON Lines (${count("record", "records")})` : "a mapping"} with fields a job file does not have (${shown}) and no documents:, questions: or prompt:. ${EXPECTS}`;
}

/** The file's records when every non-empty line (at least two) is a JSON object. */
function jsonLines(text: string): Json[] | null {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  if (lines.length < 2 || !lines.every((l) => l.startsWith("{") && l.endsWith("}"))) return null;
  const records: Json[] = [];
  for (const line of lines) {
    try {
      const value: unknown = JSON.parse(line);
      if (!isRecord(value)) return null;
      records.push(value);
    } catch {
      return null;
    }
  }
  return records;
}

export const notAJob = {
  /** Documents, binary files, JSON Lines and HTML, recognised from their first bytes. */
  beforeParse(text: string, file: string, partial = false): string | null {
    const ext = path.extname(file).toLowerCase();
    if (text.startsWith("%PDF-")) return `this is a PDF document, not a job file; ${AS_DOCUMENT}. ${EXPECTS}`;
    if (text.startsWith("PK\u0003\u0004")) {
      const what = ext === ".docx" || ext === ".xlsx" ? DOCUMENT_EXTENSIONS[ext]! : "a ZIP archive";
      return `this is ${what}, not a job file; ${AS_DOCUMENT}. ${EXPECTS}`;
    }
    if (text.includes("\u0000")) return `this is a binary file, not a job file. ${EXPECTS}`;
    const records = jsonLines(text);
    if (records) return describeRecords(records, "JSON Lines", partial);
    if (/^\s*<(!doctype html|html)[\s>]/i.test(text)) return `this is an HTML page, not a job file; ${AS_DOCUMENT}. ${EXPECTS}`;
    return null;
  },

  /**
   * A file the YAML parser has many complaints about and that has no job field at the start of
   * a line is not a job with a typo: say so once. A job file with a YAML mistake keeps its list.
   */
  afterYamlErrors(text: string, file: string, count: number, firstLine: number, firstMessage: string): string | null {
    if (new RegExp(`^(name|${JOB_MARKERS.join("|")})\\s*:`, "m").test(text)) return null;
    const document = DOCUMENT_EXTENSIONS[path.extname(file).toLowerCase()];
    if (document) return `this looks like ${document}, not a job file; ${AS_DOCUMENT}. ${EXPECTS}`;
    if (count <= 3) return null;
    return `this is not a YAML job file: the YAML parser found ${count} problems, the first at line ${firstLine} (${firstMessage}). ${EXPECTS}`;
  },

  /** A parsed file that is not a mapping, or a mapping with none of a job's fields. */
  afterParse(raw: unknown, file: string): string | null {
    const ext = path.extname(file).toLowerCase();
    const document = DOCUMENT_EXTENSIONS[ext];
    if (raw === null || raw === undefined) return `the file has no YAML content (it is empty, or only # comments). ${EXPECTS}`;
    if (Array.isArray(raw)) {
      if (raw.length > 0 && raw.every(isRecord)) {
        const described = describeRecords(raw as Json[], "a list");
        if (!described.startsWith("this is a mapping")) return described;
      }
      return `this is a list of ${raw.length} entr${raw.length === 1 ? "y" : "ies"}, not a mapping of fields. ${EXPECTS}`;
    }
    if (!isRecord(raw)) {
      return document
        ? `this looks like ${document} (${typeof raw === "string" ? "plain text" : `a ${typeof raw}`} to YAML), not a job file; ${AS_DOCUMENT}. ${EXPECTS}`
        : `this is ${typeof raw === "string" ? "plain text" : `a single ${typeof raw}`}, not a mapping of fields. ${EXPECTS}`;
    }
    const keys = Object.keys(raw);
    if (keys.some((k) => JOB_MARKERS.includes(k))) return null;
    const container = path.extname(file).toLowerCase() === ".jsonl" ? "JSON Lines" : "a single record";
    const known = recognise([raw], container);
    if (known) return known;
    const fields = Object.keys(jobSpecSchema.shape);
    // A job's own fields, or at least half its fields a job's or close to one (`promt`): a job
    // with mistakes, which the schema explains field by field.
    const jobLike = keys.filter((k) => fields.includes(k) || suggestion(k) !== "").length;
    return jobLike * 2 >= keys.length ? null : unknownRecords([raw], container);
  },

  tooLarge(size: number): string {
    return `the file is ${(size / 1024 / 1024).toFixed(1)} MiB; a job file is a few KB of YAML. ${EXPECTS}`;
  },
};
