// Compiles the package for `npm pack` (the prepack script): dist/ holds the JavaScript of the
// command and of the programmatic API, with their type declarations, for Node without TypeScript.
import { execFileSync } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const root = path.join(import.meta.dirname, "..");
const dist = path.join(root, "dist");

await rm(dist, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });

// tsc rewrites `./x.ts` to `./x.js` in the JavaScript it emits but not in declarations, which
// a consumer's TypeScript could not then resolve.
let fixed = 0;
for (const entry of await readdir(dist, { recursive: true })) {
  if (!entry.endsWith(".d.ts")) continue;
  const file = path.join(dist, entry);
  const text = await readFile(file, "utf8");
  const out = text.replace(/(from\s+|import\()(["'])(\.{1,2}\/[^"']+)\.ts\2/g, "$1$2$3.js$2");
  if (out !== text) {
    await writeFile(file, out);
    fixed++;
  }
}
process.stdout.write(`dist/ built (${fixed} declaration file(s) had their imports pointed at .js)\n`);
