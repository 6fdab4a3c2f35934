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
    const files = exampleFiles();
    const r = await longdoc(["validate", ...files]);
    expect(r.stdout.trimEnd().split("\n")).toEqual(files.map((f) => expect.stringMatching(new RegExp(`^${f.replace(/[.]/g, "\\.")}: ok \\(`))));
    expect(r.code).toBe(0);
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
