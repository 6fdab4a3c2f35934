import { mkdir, readdir, rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { LongdocError } from "../errors.ts";
import { inBatches } from "./manifest.ts";
import { jsonText, keys, type ObjectStore } from "./store.ts";

/** A job id that is safe as one folder name: what `newJobId` makes, never `.` or `..`. */
export function checkJobIdForPath(jobId: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(jobId) || jobId.includes("..")) {
    throw new LongdocError("usage", `${JSON.stringify(jobId)} is not a job id (letters, digits, '.', '-' and '_', not starting with '.' and without '..')`);
  }
}

/**
 * The file an object key of a run is copied to, or an error naming the key when it could land
 * outside `target`: every part of the key below the run's prefix must be a plain name (no empty,
 * `.` or `..` part, no drive letter or backslash, no control characters). Keys are refused rather
 * than skipped, before anything is written, so a tampered run is noticed and never half-copied.
 */
export function mirrorPath(target: string, prefix: string, key: string): string {
  const rel = key.slice(prefix.length);
  const refuse = (why: string) => new LongdocError("job_invalid", `refusing to copy the run: object key ${JSON.stringify(key)} ${why}`);
  if (!key.startsWith(prefix) || rel === "") throw refuse(`is not under ${prefix}`);
  if (/[\u0000-\u001f\u007f-\u009f]/.test(rel)) throw refuse("has control characters");
  if (rel.includes("\\")) throw refuse("has a backslash");
  for (const part of rel.split("/")) {
    if (part === "" || part === "." || part === "..") throw refuse(`has ${part === "" ? "an empty or absolute" : `a '${part}'`} path part`);
    if (/^[A-Za-z]:/.test(part)) throw refuse("has a drive-letter path part");
  }
  const file = path.resolve(target, ...rel.split("/"));
  const back = path.relative(target, file);
  if (back === "" || back.startsWith("..") || path.isAbsolute(back)) throw refuse(`would be written outside ${target}`);
  return file;
}

/**
 * Copies runs/<jobId>/ from the bucket to <outDir>/<jobId>/, keeping the layout. Files of an
 * earlier copy that the run no longer has (under items/, and the halt and cancel markers, which
 * a retry moves) are removed, so the copy matches the run; other files there are left alone.
 * `written` holds JSON objects the caller has just put (by key): they are written out as put,
 * without reading them back.
 */
export async function mirrorRun(store: ObjectStore, jobId: string, outDir: string, written?: ReadonlyMap<string, unknown>): Promise<string> {
  checkJobIdForPath(jobId);
  const prefix = keys.run(jobId);
  const target = path.resolve(outDir, jobId);
  // Every key is checked before anything is written.
  const files = (await store.listKeys(prefix)).map((key) => ({ key, file: mirrorPath(target, prefix, key) }));
  const wanted = new Set(files.map((f) => f.file));
  // Thirty-two copies at a time: a run of 10,000 items is some 20,000 objects.
  await inBatches(files, 32, async ({ key, file }) => {
    await mkdir(path.dirname(file), { recursive: true });
    const known = written?.get(key);
    await writeFile(file, known !== undefined ? jsonText(known) : ((await store.getBytes(key)) ?? new Uint8Array()));
  });
  for (const marker of ["halt.json", "cancel.json"]) {
    const file = path.join(target, marker);
    if (!wanted.has(file)) await rm(file, { force: true });
  }
  await pruneStale(path.join(target, "items"), wanted);
  return target;
}

/** Removes files under `dir` not in `wanted`, then the folders that became empty. */
async function pruneStale(dir: string, wanted: Set<string>): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      await pruneStale(p, wanted);
      if ((await readdir(p)).length === 0) await rmdir(p);
    } else if (!wanted.has(p)) {
      await rm(p, { force: true });
    }
  }
}
