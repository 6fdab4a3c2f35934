import { glob, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { LongdocError } from "../errors.ts";
import { schemaProblem } from "./output.ts";
import { s3Uri, type ItemDocument } from "./record.ts";
import type { JobSpec } from "./schema.ts";

export interface LocalDocument {
  /** As shown to users and in the manifest: relative to the repo (cwd) when inside it. */
  source: string;
  absolutePath: string;
}

/**
 * Expands `path:` sources (files or globs) relative to the job file's folder, falling back to
 * the current directory, as the contract says. A source that matches nothing is an error that
 * names it; s3 sources are left to `resolveS3Documents`.
 */
export async function resolveLocalDocuments(spec: JobSpec, jobFile: string, cwd = process.cwd()): Promise<LocalDocument[]> {
  const jobDir = path.dirname(path.resolve(cwd, jobFile));
  const found = new Map<string, LocalDocument>();
  for (const [index, src] of spec.documents.entries()) {
    if (!("path" in src)) continue;
    let matches: string[] = [];
    for (const base of [jobDir, cwd]) {
      matches = await expand(src.path, base);
      if (matches.length > 0) break;
    }
    if (matches.length === 0) {
      throw new LongdocError("document_missing", `${jobFile}: documents[${index}].path: '${src.path}' matches no file (looked in ${path.relative(cwd, jobDir) || "."} and the current folder)`);
    }
    for (const abs of matches.sort()) {
      const rel = path.relative(cwd, abs);
      found.set(abs, { absolutePath: abs, source: rel.startsWith("..") ? abs : rel.split(path.sep).join("/") });
    }
  }
  return [...found.values()];
}

async function expand(pattern: string, base: string): Promise<string[]> {
  const abs = path.resolve(base, pattern);
  if (!/[*?[{]/.test(pattern)) {
    const s = await stat(abs).catch(() => undefined);
    return s?.isFile() ? [abs] : [];
  }
  const out: string[] = [];
  for await (const entry of glob(pattern, { cwd: base })) {
    const full = path.resolve(base, entry);
    if ((await stat(full)).isFile()) out.push(full);
  }
  return out;
}

/** The answer schema, inline or from `schemaFile` (relative to the job file), checked to compile. */
export async function resolveOutputSchema(spec: JobSpec, jobFile: string): Promise<Record<string, unknown> | null> {
  if (spec.output.format !== "json") return null;
  let schema = spec.output.schema;
  if (spec.output.schemaFile) {
    const file = path.resolve(path.dirname(jobFile), spec.output.schemaFile);
    try {
      schema = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new LongdocError("job_invalid", `${jobFile}: output.schemaFile: cannot read ${spec.output.schemaFile} as JSON (${(e as Error).message})`);
    }
  }
  const problem = schemaProblem(schema!);
  if (problem) throw new LongdocError("job_invalid", `${jobFile}: output.schema: ${problem}`);
  return schema!;
}
