import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { startSimulator } from "../shared/sim/index.ts";

describe("the quota is the speed limit", () => {
  let stack: LocalStack;
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  beforeAll(async () => {
    stack = await startLocalStack({ visibilityTimeoutS: 2 });
    // The provider's quota, enforced per minute and per second as the real API does.
    sim = await startSimulator({ port: 0, rpm: 120, tpm: 60_000 });
  });
  afterAll(async () => {
    await sim?.stop();
    await stack?.stop();
  });

  it("many workers sharing the job's quota never trip the provider's limits", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-quota-"));
    await mkdir(path.join(dir, "docs"));
    // Each prompt is larger than the per-second token quota (1,000), so each needs a second of its own.
    const body = (i: number) => Array.from({ length: 150 }, (_, w) => `Item ${i}.${w}: revenue ${(i * 97 + w) % 1000} million.`).join("\n");
    await Promise.all(Array.from({ length: 5 }, (_, i) => writeFile(path.join(dir, "docs", `r${i}.md`), body(i))));
    const jobFile = path.join(dir, "job.yaml");
    await writeFile(jobFile, "name: quota\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nmaxOutputTokens: 512\nlimits: { rpm: 120, tpm: 60000 }\n");
    const before = sim.calls.length;
    const run = await runLocalJob({ jobFile, outDir: path.join(dir, "out"), workers: 5, env: { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL }, log: silentLog, stack });
    const calls = sim.calls.slice(before);
    expect(calls.map((c) => `${c.status} ${c.errorCode ?? ""}`.trim())).toEqual(["200", "200", "200", "200", "200"]);
    expect(calls.every((c) => c.promptTokens > 1000)).toBe(true);
    expect(run.manifest.items.every((i) => i.status === "succeeded" && i.attempts === 1)).toBe(true);
  });
});
