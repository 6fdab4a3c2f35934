// Every example job passes `longdoc validate`, and the scheduled and upload-triggered examples
// say what they claim to (a monthly cron over s3: statements with JSON output; inbox uploads).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { longdoc, ROOT } from "./helpers/cli.ts";
import { loadJobFile } from "../shared/job/load.ts";

const EXAMPLES = path.join(ROOT, "jobs", "examples");
const exampleFiles = () =>
  readdirSync(EXAMPLES)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => path.join("jobs", "examples", f));


describe("example jobs", () => {
  it("includes a scheduled and an upload-triggered example", () => {
    expect(exampleFiles()).toEqual(expect.arrayContaining(["jobs/examples/monthly-statements.yaml", "jobs/examples/contract-review.yaml"]));
  });

  it("every jobs/examples/*.yaml passes `longdoc validate`", async () => {
    // The batch examples need a region whose Batch API serves qwen3-max (Beijing): docs/batch-mode.md.
    const isBatch = (f: string) => path.basename(f).startsWith("batch-");
    for (const [files, env] of [[exampleFiles().filter((f) => !isBatch(f)), {}], [exampleFiles().filter(isBatch), { LONGDOC_REGION: "cn-beijing" }]] as const) {
      const r = await longdoc(["validate", ...files], env);
      expect(r.stdout.trimEnd().split("\n")).toEqual(files.map((f) => expect.stringMatching(new RegExp(`^${f.replace(/[.]/g, "\\.")}: ok \\(`))));
      expect(r.code).toBe(0);
    }
  });

  it("a batch example in a region without qwen3-max batch is refused, naming where it is offered", async () => {
    const r = await longdoc(["validate", "jobs/examples/batch-annual-reports.yaml"], { LONGDOC_REGION: "ap-southeast-1" });
    expect(r.stdout).toContain("mode: batch: the endpoint's region is ap-southeast-1, but its Batch API serves qwen3-max only in cn-beijing");
    expect(r.code).not.toBe(0);
  });

  it("monthly-statements: a monthly cron over an s3: prefix, JSON output checked against a schema file that exists", async () => {
    const file = path.join(EXAMPLES, "monthly-statements.yaml");
    const spec = await loadJobFile(file);
    // Deployed schedules find a job by its file name.
    expect(spec.name).toBe("monthly-statements");
    expect(spec.schedule).toMatch(/^cron\(\S+ \S+ \d+ \* \? \*\)$/);
    expect(spec.documents).toEqual([{ s3: expect.stringMatching(/^s3:\/\/[a-z0-9.-]+\/.+\/$/) }]);
    expect(spec.output).toEqual({ format: "json", schemaFile: "schemas/statement-summary.json" });
    const schema = path.join(EXAMPLES, "schemas", "statement-summary.json");
    expect(existsSync(schema)).toBe(true);
    expect(JSON.parse(readFileSync(schema, "utf8")).type).toBe("object");
    expect(spec.thinking.enabled).toBe(false);
    expect(spec.limits.maxCostUsd).toBeGreaterThan(0);
  });

  it("contract-review: started by uploads to inbox/contract-review/", async () => {
    const spec = await loadJobFile(path.join(EXAMPLES, "contract-review.yaml"));
    expect(spec.name).toBe("contract-review");
    expect(spec.trigger).toBe("upload");
    expect(spec.schedule).toBeUndefined();
    expect(readFileSync(path.join(EXAMPLES, "contract-review.yaml"), "utf8")).toContain("inbox/contract-review/");
  });
});
