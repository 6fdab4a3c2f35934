import { existsSync } from "node:fs";
import { glob, readdir, readFile, realpath, stat } from "node:fs/promises";
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

export interface ResolveOptions {
  /** The folder relative paths fall back to, and whose repository documents may come from (default: process.cwd()). */
  cwd?: string;
  /**
   * Accept documents that resolve (symlinks followed) outside the job file's folder and the
   * current repository (`--allow-outside`). Off by default, so a job file cannot send any
   * readable file (`../../etc/passwd`, `/etc/hostname`, a symlink to `/etc/hosts`) to the model.
   */
  allowOutside?: boolean;
  /** Told about files a glob skipped (dotfiles), one message each. */
  onWarning?: (message: string) => void;
}

/**
 * The repository the command runs in: the nearest folder at or above `cwd` with a package.json
 * or a .git, else `cwd` itself.
 */
export function repositoryRoot(cwd: string): string {
  for (let dir = path.resolve(cwd); ; ) {
    if (existsSync(path.join(dir, "package.json")) || existsSync(path.join(dir, ".git"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(cwd);
    dir = up;
  }
}

const inside = (file: string, root: string) => {
  const rel = path.relative(root, file);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
};

/**
 * Expands `path:` sources (files or globs) relative to the job file's folder, falling back to
 * the current directory, as the contract says. A source that matches nothing is an error that
 * names it; s3 sources are left to `resolveS3Documents`. Every match must resolve, symlinks
 * followed, inside the job file's folder or the current repository unless `allowOutside`.
 * Files a glob skips because they are dotfiles are reported through `onWarning`.
 */
export async function resolveLocalDocuments(spec: JobSpec, jobFile: string, opts: ResolveOptions = {}): Promise<LocalDocument[]> {
  const cwd = opts.cwd ?? process.cwd();
  const jobDir = path.dirname(path.resolve(cwd, jobFile));
  const roots = [...new Set([await realpath(jobDir).catch(() => jobDir), await realpath(repositoryRoot(cwd)).catch(() => repositoryRoot(cwd))])];
  const found = new Map<string, LocalDocument>();
  for (const [index, src] of spec.documents.entries()) {
    if (!("path" in src)) continue;
    let matches: string[] = [];
    let matchedIn = jobDir;
    for (const base of [jobDir, cwd]) {
      matches = await expand(src.path, base);
      matchedIn = base;
      if (matches.length > 0) break;
    }
    if (matches.length === 0) {
      throw new LongdocError("document_missing", `${jobFile}: documents[${index}].path: '${src.path}' matches no file (looked in ${path.relative(cwd, jobDir) || "."} and the current folder)`);
    }
    if (!opts.allowOutside) {
      for (const abs of matches) {
        const real = await realpath(abs);
        if (!roots.some((root) => inside(real, root))) {
          const shown = real === abs ? real : `${abs} -> ${real}`;
          throw new LongdocError(
            "job_invalid",
            `${jobFile}: documents[${index}].path: '${src.path}' resolves to ${shown}, outside the job file's folder and the current repository (${roots.join(", ")}); pass --allow-outside to send it anyway`,
          );
        }
      }
    }
    if (opts.onWarning && isGlob(src.path)) {
      const skipped = await skippedDotfiles(src.path, matchedIn, new Set(matches));
      if (skipped.length > 0) {
        const shown = skipped.slice(0, 20).map((f) => path.relative(cwd, f) || f);
        opts.onWarning(
          `${jobFile}: documents[${index}].path: '${src.path}' skips ${skipped.length} dotfile(s) (globs do not match names starting with '.'; name them explicitly to include them): ${shown.join(", ")}${skipped.length > shown.length ? ", ..." : ""}`,
        );
      }
    }
    for (const abs of matches.sort()) {
      const rel = path.relative(cwd, abs);
      found.set(abs, { absolutePath: abs, source: rel.startsWith("..") ? abs : rel.split(path.sep).join("/") });
    }
  }
  return [...found.values()];
}

const isGlob = (pattern: string) => /[*?[{]/.test(pattern);

async function expand(pattern: string, base: string): Promise<string[]> {
  const abs = path.resolve(base, pattern);
  if (!isGlob(pattern)) {
    const s = await stat(abs).catch(() => undefined);
    return s?.isFile() ? [abs] : [];
  }
  const out: string[] = [];
  for await (const entry of glob(pattern, { cwd: base })) {
    const full = path.resolve(base, entry);
    if ((await stat(full).catch(() => undefined))?.isFile()) out.push(full);
  }
  return out;
}

/**
 * Files the glob would have matched if names starting with '.' were not skipped: the dotfiles
 * (and files in dot-folders) under the pattern's fixed leading folder, whose path matches the
 * pattern once each leading dot is replaced. Bounded, so a pattern over a large tree stays cheap.
 */
async function skippedDotfiles(pattern: string, base: string, matched: Set<string>): Promise<string[]> {
  const normalized = path.posix.normalize(pattern.split(path.sep).join("/"));
  const segments = normalized.split("/");
  const fixed: string[] = [];
  for (const seg of segments.slice(0, -1)) {
    if (isGlob(seg)) break;
    fixed.push(seg);
  }
  const start = path.resolve(base, fixed.join("/") || ".");
  const maxDepth = normalized.includes("**") ? Infinity : segments.length - fixed.length - 1;
  const undot = (p: string) => p.split("/").map((s) => (s.startsWith(".") && s !== "." && s !== ".." ? `_${s.slice(1)}` : s)).join("/");
  const want = undot(normalized);
  const out: string[] = [];
  let budget = 20_000;
  const walk = async (dir: string, depth: number, dotted: boolean): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (--budget < 0) return;
      if (e.name === "node_modules" || e.name === ".git") continue;
      const full = path.join(dir, e.name);
      const isDot = dotted || e.name.startsWith(".");
      if (e.isDirectory()) {
        if (depth < maxDepth) await walk(full, depth + 1, isDot);
      } else if (isDot && !matched.has(full)) {
        const rel = path.isAbsolute(normalized) ? full : path.relative(base, full).split(path.sep).join("/");
        if (path.matchesGlob(undot(rel), want)) out.push(full);
      }
    }
  };
  await walk(start, 0, false);
  return out.sort();
}

/** A schema file larger than this is not read: a JSON Schema for answers is a few kilobytes. */
export const MAX_SCHEMA_FILE_BYTES = 1024 * 1024;

/**
 * Why a JSON.parse failure happened, without any of the text it read: the position only, since
 * the message of a parse error quotes the file (which may be /etc/passwd or an environment).
 */
function jsonProblem(e: unknown): string {
  const at = /at position (\d+)/.exec((e as Error).message);
  return at ? `not valid JSON (at byte ${at[1]})` : "not valid JSON";
}

/**
 * The answer schema, inline or from `schemaFile` (relative to the job file), checked to compile.
 * The file is confined as documents are: a regular file that resolves (symlinks followed) inside
 * the job file's folder or the current repository unless `allowOutside`, of bounded size; errors
 * name the file and never quote what it holds.
 */
export async function resolveOutputSchema(spec: JobSpec, jobFile: string, opts: Pick<ResolveOptions, "allowOutside" | "cwd"> = {}): Promise<Record<string, unknown> | null> {
  if (spec.output.format !== "json") return null;
  let schema = spec.output.schema;
  if (spec.output.schemaFile) {
    const cwd = opts.cwd ?? process.cwd();
    const jobDir = path.dirname(path.resolve(cwd, jobFile));
    const named = spec.output.schemaFile;
    const where = `${jobFile}: output.schemaFile: ${named}`;
    const file = path.resolve(jobDir, named);
    const real = await realpath(file).catch(() => undefined);
    if (real === undefined) throw new LongdocError("job_invalid", `${where}: no such file (looked for ${file})`);
    if (!opts.allowOutside) {
      const roots = [...new Set([await realpath(jobDir).catch(() => jobDir), await realpath(repositoryRoot(cwd)).catch(() => repositoryRoot(cwd))])];
      if (!roots.some((root) => inside(real, root))) {
        const shown = real === file ? real : `${file} -> ${real}`;
        throw new LongdocError("job_invalid", `${where}: resolves to ${shown}, outside the job file's folder and the current repository (${roots.join(", ")}); pass --allow-outside to read it anyway`);
      }
    }
    const s = await stat(real);
    if (!s.isFile()) throw new LongdocError("job_invalid", `${where}: not a regular file`);
    if (s.size > MAX_SCHEMA_FILE_BYTES) throw new LongdocError("job_invalid", `${where}: ${s.size} bytes, over the ${MAX_SCHEMA_FILE_BYTES}-byte limit for a schema file`);
    let text: string;
    try {
      text = await readFile(real, "utf8");
    } catch (e) {
      throw new LongdocError("job_invalid", `${where}: cannot be read (${(e as NodeJS.ErrnoException).code ?? "read error"})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new LongdocError("job_invalid", `${where}: ${jsonProblem(e)}; a schema file holds one JSON Schema object`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new LongdocError("job_invalid", `${where}: not a JSON object; a schema file holds one JSON Schema object`);
    schema = parsed as Record<string, unknown>;
  }
  const problem = schemaProblem(schema!);
  if (problem) throw new LongdocError("job_invalid", `${jobFile}: output.schema: ${problem}`);
  return schema!;
}
