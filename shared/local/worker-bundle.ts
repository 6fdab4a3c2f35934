import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ESM_REQUIRE_BANNER, INSTALLED_PACKAGES } from "../bundle.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CACHE = path.join(ROOT, "node_modules", ".cache", "longdoc");

/**
 * The file a local worker process starts from. From the TypeScript sources a worker process
 * resolves, strips and links some 750 modules at every start (about 0.6 s of CPU); bundled and
 * minified with esbuild, as the deployed worker is, it loads in about 0.35 s of CPU (0.5 s
 * unminified: parsing 9 MB of source rather than 4.5). The bundle is built once per
 * version of the sources (named by their sizes and times) under node_modules/.cache. The compiled
 * package, or a checkout without esbuild, starts the worker from its own file.
 */
export async function workerEntry(sourceFile: string): Promise<string> {
  if (!sourceFile.endsWith(".ts")) return sourceFile;
  const esbuild = await import("esbuild").catch(() => null);
  if (!esbuild) return sourceFile;
  const out = path.join(CACHE, `worker-process-${await sourcesVersion()}.mjs`);
  if (await stat(out).catch(() => null)) return out;
  await mkdir(CACHE, { recursive: true });
  // Built beside its final name and renamed: processes starting at once never read half a file.
  const partial = `${out}.${randomBytes(4).toString("hex")}.tmp`;
  await esbuild.build({
    entryPoints: [sourceFile],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    minify: true,
    // Errors keep their class names in the workers' logs (LongdocError names itself after its class).
    keepNames: true,
    outfile: partial,
    external: INSTALLED_PACKAGES,
    banner: { js: ESM_REQUIRE_BANNER },
    logLevel: "silent",
  });
  await rename(partial, out);
  // Bundles of earlier sources are not used again (an hour's grace for a run still starting from one).
  for (const name of await readdir(CACHE)) {
    const file = path.join(CACHE, name);
    const age = Date.now() - ((await stat(file).catch(() => null))?.mtimeMs ?? Date.now());
    if (name.startsWith("worker-process-") && file !== out && age > 3_600_000) await rm(file, { force: true });
  }
  return out;
}

/** Changes whenever a file the worker could bundle changes: the core library or the installed packages. */
async function sourcesVersion(): Promise<string> {
  const hash = createHash("sha256");
  const shared = path.join(ROOT, "shared");
  const files = (await readdir(shared, { recursive: true })).sort().map((f) => path.join(shared, f));
  for (const file of [...files, path.join(ROOT, "package-lock.json")]) {
    const s = await stat(file).catch(() => null);
    if (s?.isFile()) hash.update(`${file}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return hash.digest("hex").slice(0, 16);
}
