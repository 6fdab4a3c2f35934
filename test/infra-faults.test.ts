// The infrastructure's faults are not the item's: S3 and DynamoDB errors that outlast the SDK's
// retries hand the task back to the queue, with no attempt used and no second model call. Set
// from outside, as a user would, on a plain `longdoc run` (LONGDOC_TEST_AWS_FAULTS in its environment).
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../shared/run/manifest.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import type { AwsFaultSpec } from "../shared/local/aws-faults.ts";
import { longdoc } from "./helpers/cli.ts";

describe("S3 and DynamoDB faults past the SDK's retries", () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(() => sim?.stop());

  it("every item succeeds with one model call and one attempt", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-infra-faults-"));
    const items = 8;
    for (let i = 1; i <= items; i++) await writeFile(path.join(dir, `note-${i}.md`), `# Note ${i}\n\nThe plant in region ${i} shipped ${i * 100} units.\n`);
    const docs = Array.from({ length: items }, (_, i) => `  - path: note-${i + 1}.md`).join("\n");
    await writeFile(path.join(dir, "job.yaml"), `name: infra-faults\ndocuments:\n${docs}\nprompt: How many units were shipped?\nmaxOutputTokens: 2048\n`);
    const countsFile = path.join(dir, "injected.txt");
    await writeFile(countsFile, "");
    // Above the SDK's retries: the worker itself sees each of these errors.
    const spec: AwsFaultSpec = {
      seed: 7,
      countsFile,
      rules: [
        { name: "dynamo-update", service: "dynamodb", commands: ["UpdateItem"], error: "ThrottlingException", probability: 0.12, insideRetries: false, max: 4 },
        { name: "dynamo-get", service: "dynamodb", commands: ["GetItem"], error: "InternalServerError", probability: 0.12, insideRetries: false, max: 4 },
        { name: "s3-put", service: "s3", commands: ["PutObject"], error: "SlowDown", probability: 0.12, insideRetries: false, max: 4 },
        { name: "s3-get", service: "s3", commands: ["GetObject", "HeadObject"], error: "InternalError", probability: 0.12, insideRetries: false, max: 4 },
      ],
    };
    const state = path.join(dir, "state");
    const out = path.join(dir, "out");
    const env = { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL, LONGDOC_TEST_AWS_FAULTS: JSON.stringify(spec) };
    const r = await longdoc(["run", path.join(dir, "job.yaml"), "--workers", "2", "--state", state, "--out", out, "--json"], env, 180_000);
    expect(r.code, r.stderr).toBe(0);

    const injected = (await readFile(countsFile, "utf8")).split("\n").filter(Boolean);
    expect(new Set(injected)).toEqual(new Set(["dynamo-update", "dynamo-get", "s3-put", "s3-get"]));
    const jobId = (JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { jobId: string }).jobId;
    const manifest = JSON.parse(await readFile(path.join(out, jobId, "manifest.json"), "utf8")) as Manifest;
    expect(manifest.counts).toMatchObject({ total: items, succeeded: items });
    expect(manifest.items.every((i) => i.attempts === 1)).toBe(true);
    expect(sim.calls.filter((c) => c.outcome === "ok")).toHaveLength(items);
    expect(sim.calls).toHaveLength(items);
  }, 200_000);
});
