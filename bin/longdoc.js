#!/usr/bin/env node
// The installed command. Plain JavaScript that any Node parses, so an older Node is told in one
// line which version it needs instead of failing on a module it lacks (node:sqlite, 22.13).
const NEED = [22, 13];
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < NEED[0] || (major === NEED[0] && minor < NEED[1])) {
  process.stderr.write(`longdoc needs Node ${NEED.join(".")} or later; this is Node ${process.versions.node}\n`);
  process.exit(1);
}
// In the repository, the TypeScript sources (never a stale build); installed, the compiled dist/.
const { existsSync } = await import("node:fs");
const source = new URL("./longdoc.ts", import.meta.url);
if (!existsSync(source)) {
  await import("../dist/bin/longdoc.js");
} else if (process.features.typescript) {
  await import(source.href);
} else {
  process.stderr.write(`longdoc from its sources needs a Node that runs TypeScript (22.18 or later); this is Node ${process.versions.node}: use npm run longdoc, which brings Node 24\n`);
  process.exit(1);
}
