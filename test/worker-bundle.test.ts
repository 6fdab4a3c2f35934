import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { workerEntry } from "../shared/local/worker-bundle.ts";

const source = fileURLToPath(new URL("../shared/local/worker-process.ts", import.meta.url));

describe("the local worker's bundle", () => {
  it("is built once from the sources under node_modules/.cache and reused", async () => {
    const first = await workerEntry(source);
    expect(first).toMatch(/node_modules\/\.cache\/longdoc\/worker-process-[0-9a-f]{16}\.mjs$/);
    expect(existsSync(first)).toBe(true);
    expect(await workerEntry(source)).toBe(first);
  }, 60_000);

  it("is not used for the compiled package, whose worker is already JavaScript", async () => {
    expect(await workerEntry("/opt/app/node_modules/longdoc/dist/shared/local/worker-process.js")).toBe("/opt/app/node_modules/longdoc/dist/shared/local/worker-process.js");
  });
});
