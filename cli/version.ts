import { readFileSync } from "node:fs";

/**
 * The package's version from its package.json: one folder up from these sources, two from the
 * compiled copy under dist/ (a JSON import would drag package.json into dist/).
 */
export function packageVersion(): string {
  for (const up of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "longdoc" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not this folder
    }
  }
  return "unknown";
}
