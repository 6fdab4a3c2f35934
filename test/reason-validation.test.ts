// Samples, tools and per-question depth in job files: what the API would refuse is refused at
// validation (file:line: field: message), and `estimate` prices k samples and each question's depth.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatProblem, JobFileError, parseJobText } from "../shared/job/load.ts";
import { getModel, loadCatalog, priceFor } from "../shared/model/catalog.ts";
import { estimateJob } from "../shared/submit/estimate.ts";

function problems(text: string): string[] {
  try {
    parseJobText(text, "jobs/x.yaml");
    return [];
  } catch (e) {
    if (e instanceof JobFileError) return e.problems.map(formatProblem);
    throw e;
  }
}

const base = "name: a\ndocuments:\n  - path: x.md\n";

describe("validation of samples, tools and per-question thinking", () => {
  it("accepts a sampled, tool-using JSON job and a per-question-depth text job", () => {
    const json = parseJobText(
      `${base}prompt: Ratios as JSON.\nsamples: 3\nminAgreement: 0.6\nnumericTolerance: { absolute: 0.01, relative: 0.005 }\ntools: [code]\ntoolChoice: code\nlimits: { maxToolRounds: 3 }\noutput: { format: json, schema: { type: object } }\n`,
      "jobs/x.yaml",
    );
    expect(json).toMatchObject({ samples: 3, minAgreement: 0.6, tools: ["code"], toolChoice: "code", limits: { maxToolRounds: 3 } });
    const depth = parseJobText(
      `${base}calls: per-question\nthinking: { enabled: false }\nquestions:\n  - id: lookup\n    ask: Revenue?\n  - id: deep\n    ask: Analyse.\n    thinking: { enabled: true, budget: 16384 }\n`,
      "jobs/x.yaml",
    );
    expect(depth.questions![1]!.thinking).toEqual({ enabled: true, budget: 16384 });
    expect(parseJobText(`${base}prompt: x\n`, "j.yaml").samples).toBe(1);
  });

  it("refuses a forced tool_choice in thinking mode, at job or question level", () => {
    expect(problems(`${base}prompt: x\nthinking: { enabled: true }\ntools: [code]\ntoolChoice: code\n`)).toEqual([
      "jobs/x.yaml:7: toolChoice: the API refuses a tool_choice that names a function in thinking mode; use `toolChoice: auto` or turn thinking off",
    ]);
    expect(
      problems(`${base}calls: per-question\ntools: [code]\ntoolChoice: code\nquestions:\n  - id: q\n    ask: x\n    thinking: { enabled: true }\n`),
    ).toEqual([expect.stringMatching(/^jobs\/x\.yaml:6: toolChoice: the API refuses a tool_choice that names a function in thinking mode/)]);
    // auto is what thinking mode accepts
    expect(problems(`${base}prompt: x\nthinking: { enabled: true }\ntools: [code]\ntoolChoice: auto\n`)).toEqual([]);
  });

  it("refuses onTruncated: continue (partial mode) with samples or tools, and with a question that thinks", () => {
    const continueOut = "output: { format: text, onTruncated: continue }\n";
    expect(problems(`${base}prompt: x\n${continueOut}samples: 3\n`)).toEqual([
      expect.stringMatching(/^jobs\/x\.yaml:\d+: output\.onTruncated: continue picks up one cut answer; sampled or tool-using calls/),
    ]);
    expect(problems(`${base}prompt: x\n${continueOut}tools: [code]\n`)).toEqual([expect.stringMatching(/output\.onTruncated: continue picks up one cut answer/)]);
    expect(problems(`${base}calls: per-question\n${continueOut}questions:\n  - id: q\n    ask: x\n    thinking: { enabled: true }\n`)).toEqual([
      expect.stringMatching(/output\.onTruncated: continue uses the API's partial mode, which works only with thinking off \(the job's and every question's\)/),
    ]);
    // One plain call with thinking off is what continue is for.
    expect(problems(`${base}prompt: x\n${continueOut}`)).toEqual([]);
  });

  it("refuses JSON output with a question thinking, and question depth without per-question calls", () => {
    expect(problems(`${base}questions:\n  - id: q\n    ask: x\n    thinking: { enabled: true }\n`)).toEqual([
      "jobs/x.yaml:7: questions[0].thinking: a question's own thinking needs `calls: per-question` (otherwise all questions share one call)",
    ]);
    const json = problems(`${base}questions:\n  - id: q\n    ask: x\n    thinking: { enabled: true }\noutput: { format: json, schema: { type: object } }\n`);
    expect(json).toContain("jobs/x.yaml:7: questions[0].thinking.enabled: the API refuses JSON output with thinking on");
    expect(problems(`${base}prompt: x\nquestions: []\n`).length).toBeGreaterThan(0);
    expect(problems(`${base}calls: per-question\nquestions:\n  - id: q\n    ask: x\n    thinking: { enabled: true, budget: 90000 }\n`)).toEqual([
      "jobs/x.yaml:8: questions[0].thinking.budget: must be at most 81920 (the API's thinking_budget cap)",
    ]);
  });

  it("refuses out-of-range samples and settings that need samples or tools", () => {
    expect(problems(`${base}prompt: x\nsamples: 9\n`)).toEqual(["jobs/x.yaml:5: samples: must be at most 8"]);
    expect(problems(`${base}prompt: x\nsamples: 0\n`)).toEqual([expect.stringMatching(/^jobs\/x\.yaml:5: samples: /)]);
    expect(problems(`${base}prompt: x\nminAgreement: 0.5\n`)).toEqual([
      "jobs/x.yaml:5: minAgreement: needs `samples:` of 2 or more (one sample always agrees with itself)",
    ]);
    expect(problems(`${base}prompt: x\nsamples: 2\nminAgreement: 1.5\n`)).toEqual(["jobs/x.yaml:6: minAgreement: must be at most 1"]);
    expect(problems(`${base}prompt: x\ntoolChoice: code\n`)).toEqual(["jobs/x.yaml:5: toolChoice: needs `tools: [code]`"]);
    expect(problems(`${base}prompt: x\ntools: [search]\n`)).toEqual([expect.stringMatching(/^jobs\/x\.yaml:5: tools\[0\]: must be one of "code"/)]);
    expect(problems(`${base}prompt: x\ntools: [code, code]\n`)).toEqual(["jobs/x.yaml:5: tools: lists a tool twice"]);
    expect(problems(`${base}prompt: x\nlimits: { maxToolRounds: 3 }\n`)).toEqual(["jobs/x.yaml:5: limits.maxToolRounds: needs `tools:`"]);
    expect(problems(`${base}prompt: x\nsamples: 2\npacking: packed\n`)).toEqual([expect.stringMatching(/^jobs\/x\.yaml:5: samples: packed calls/)]);
    expect(problems(`${base}prompt: x\njudge: true\n`)).toEqual(["jobs/x.yaml:5: judge: needs `samples:` of 2 or more (it picks one of the sampled answers)"]);
    expect(problems(`${base}prompt: x\nsamples: 2\njudge: true\noutput: { format: json, schema: { type: object } }\n`)).toEqual([
      "jobs/x.yaml:6: judge: JSON answers are merged field by field; a judging call is for text output",
    ]);
        expect(problems(`${base}prompt: x\nsample: 3\n`)).toEqual([expect.stringMatching(/sample.*did you mean 'samples'/)]);
  });
});

describe("estimate with samples and per-question depth", () => {
  const catalog = loadCatalog();
  const model = getModel(catalog, "qwen3-max");

  async function jobDir(yaml: string) {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-reason-"));
    await writeFile(path.join(dir, "doc.md"), `# Report\n\n${"Revenue grew in every segment, and margins held. ".repeat(400)}\n`);
    await writeFile(path.join(dir, "job.yaml"), yaml);
    return path.join(dir, "job.yaml");
  }

  it("prices k samples with every sample after the first reading the prefix at the cache-hit price", async () => {
    const common = "name: e\ndocuments:\n  - path: doc.md\nprompt: Summarise.\ncache: explicit\n";
    const file = await jobDir(common);
    const one = await estimateJob(parseJobText(common, "e.yaml"), file, catalog);
    const three = await estimateJob(parseJobText(`${common}samples: 3\n`, "e.yaml"), file, catalog);
    const [a, b] = [one.items[0]!, three.items[0]!];
    expect(b).toMatchObject({ calls: 3, samples: 3, error: null });
    expect(b.inputTokens).toBe(3 * a.inputTokens!);
    // Two extra samples read the explicit cache block (the prefix) at the hit price.
    const prefix = b.cachedTokens / 2;
    expect(prefix).toBeGreaterThan(1024);
    const hit = priceFor(model, { inputTokens: a.inputTokens!, cachedTokens: prefix, cacheType: "ephemeral", outputTokens: 0 }).cost;
    // (estimates are rounded to the millionth of the currency)
    expect(b.inputCost).toBeCloseTo(a.inputCost + 2 * hit, 5);
    expect(hit).toBeLessThan(a.inputCost / 3);
    expect(b.cacheSavings).toBeGreaterThan(a.cacheSavings);
  });

  it("follows each question's thinking budget", async () => {
    const yaml = `name: e\ndocuments:\n  - path: doc.md\ncalls: per-question\nmaxOutputTokens: 1000\nquestions:\n  - id: quick\n    ask: Revenue?\n  - id: deep\n    ask: Why?\n    thinking: { enabled: true, budget: 20000 }\n`;
    const est = await estimateJob(parseJobText(yaml, "e.yaml"), await jobDir(yaml), catalog);
    const item = est.items[0]!;
    const outputPrice = model.tiers[0]!.outputPerM / 1e6;
    // The ceiling counts 1000 answer tokens for the quick question and 1000 + 20000 for the deep one.
    expect(item.cost - item.inputCost).toBeCloseTo((1000 + 21000) * outputPrice, 6);
  });
});

describe("the financial-model example", () => {
  it("asks for computed ratios over the Coca-Cola workbook and the 3M 10-K with the code tool and three samples, as JSON against a schema file", async () => {
    const { loadJobFile } = await import("../shared/job/load.ts");
    const { readFileSync, existsSync } = await import("node:fs");
    const file = "jobs/examples/financial-model.yaml";
    const spec = await loadJobFile(file);
    expect(spec).toMatchObject({ name: "financial-model", samples: 3, tools: ["code"], cache: "explicit", thinking: { enabled: false } });
    expect(spec.documents).toEqual([{ path: "workbooks/cocacola-2024-10k-Financial_Report.xlsx" }, { path: "docs/3M_2018_10K.pdf" }]);
    for (const d of spec.documents) expect(existsSync(path.join("jobs/examples", (d as { path: string }).path))).toBe(true);
    expect(spec.output).toEqual({ format: "json", schemaFile: "schemas/financial-ratios.json" });
    const schema = JSON.parse(readFileSync("jobs/examples/schemas/financial-ratios.json", "utf8"));
    expect(schema.required).toEqual(expect.arrayContaining(["revenueGrowthPct", "operatingMarginPct", "currentRatio", "debtToEquity"]));
    expect(spec.minAgreement).toBeGreaterThan(0);
  });
});

describe("the judging call's prompt and reply", async () => {
  const { judgePrompt, parseJudgement, samplesIn } = await import("../shared/reason/judge.ts");
  it("frames each sample so a tag inside an answer cannot end it, and reads back the pick", () => {
    const answers = ["first </sample> answer", 'second <sample n="1"> answer', "third"];
    expect(samplesIn(judgePrompt(answers))).toEqual(answers);
    expect(parseJudgement("Chosen: 2\nWhy: it cites the pages.", 3)).toEqual({ chosen: 2, why: "it cites the pages." });
    expect(parseJudgement("**Chosen:** sample 3 — complete.", 3)).toEqual({ chosen: 3, why: "— complete." });
    expect(parseJudgement("Chosen: 4", 3)).toBeNull();
    expect(parseJudgement("I like the second one", 3)).toBeNull();
  });
});
