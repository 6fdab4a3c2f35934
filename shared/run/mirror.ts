import { mkdir, readdir, rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { keys, type ObjectStore } from "./store.ts";

/**
 * Copies runs/<jobId>/ from the bucket to <outDir>/<jobId>/, keeping the layout. Files of an
 * earlier copy that the run no longer has (under items/, and the halt and cancel markers, which
 * a retry moves) are removed, so the copy matches the run; other files there are left alone.
 */
export async function mirrorRun(store: ObjectStore, jobId: string, outDir: string): Promise<string> {
  const prefix = keys.run(jobId);
  const target = path.resolve(outDir, jobId);
  const wanted = new Set<string>();
  for (const key of await store.listKeys(prefix)) {
    const file = path.join(target, key.slice(prefix.length));
    wanted.add(file);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, (await store.getBytes(key)) ?? new Uint8Array());
  }
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
