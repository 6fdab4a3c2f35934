// `longdoc results <jobId> --format csv`: one row per item, JSON answers flattened into columns
// (text answers as one column), RFC 4180 quoting checked by reading the file back with csv-parse.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { longdoc as longdocCli } from "./helpers/cli.ts";
import { csvText, type Cell } from "../cli/csv.ts";

/** One value as written in a CSV file (the record of a one-column file, without its CRLF). */
const csvField = (v: Cell) => csvText(["x"], [[v]]).slice("x\r\n".length, -"\r\n".length);
import { CSV_BASE_COLUMNS, flattenAnswer, splitByQuestion } from "../cli/results-csv.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

const longdoc = async (args: string[]) => longdocCli(args, { DASHSCOPE_API_KEY: "" });

describe("CSV writing (RFC 4180)", () => {
  it("quotes fields with commas, quotes, CR or LF, doubling quotes; ends records with CRLF", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(csvField(null)).toBe("");
    expect(csvField(12.5)).toBe("12.5");
    expect(csvText(["a", "b"], [[1, "x"]])).toBe("a,b\r\n1,x\r\n");
  });

  it("defuses text a spreadsheet would run as a formula, and leaves numbers alone", () => {
    expect(csvField("=HYPERLINK(\"http://x\")")).toBe('"\'=HYPERLINK(""http://x"")"');
    expect(csvField("+1")).toBe("'+1");
    expect(csvField("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvField(-5)).toBe("-5");
  });

  it("reads back field for field with csv-parse, whatever the text", () => {
    const nasty = ["", "a,b", '"quoted"', "line\r\nbreak", "tab\tin", "ünïcødé ✓", ",,,", '""', "\n", "x\"y\"z"];
    const rows = nasty.map((s, i) => [i, s]);
    const back = parse(csvText(["n", "text"], rows), { columns: true }) as { n: string; text: string }[];
    expect(back.map((r) => r.text)).toEqual(nasty);
  });

  it("flattens a JSON answer by dotted path, arrays as JSON text in one cell", () => {
    expect([...flattenAnswer({ company: "Acme", totals: { revenue: 10, debt: { long: 2 } }, risks: ["fx", "rates"], empty: {} })]).toEqual([
      ["answer.company", "Acme"],
      ["answer.totals.revenue", 10],
      ["answer.totals.debt.long", 2],
      ["answer.risks", '["fx","rates"]'],
      ["answer.empty", "{}"],
    ]);
  });
});

describe("longdoc results --format csv on a run", () => {
  let dir: string;
  let sim: Simulator;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-csv-"));
    sim = await startSimulator({ port: 0 });
  });
  afterAll(async () => {
    await sim?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const runJob = async (name: string, body: string) => {
    const jobDir = path.join(dir, name);
    await mkdir(path.join(jobDir, "docs"), { recursive: true });
    await writeFile(path.join(jobDir, "docs", "a, \"first\".md"), "# A\n\nRevenue 10, debt 2.\n");
    await writeFile(path.join(jobDir, "docs", "b.md"), "# B\n\nRevenue 7.\n");
    const jobFile = path.join(jobDir, "job.yaml");
    await writeFile(jobFile, `name: ${name}\ndocuments:\n  - path: docs/*.md\n${body}`);
    const state = path.join(dir, `${name}-state`);
    const settings = loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL });
    const r = await runLocalJob({ inProcess: true, jobFile, outDir: path.join(dir, "out"), workers: 1, settings, log: silentLog, dataDir: state });
    const res = await longdoc(["results", r.job.jobId, "--state", state, "--out", path.join(dir, "out"), "--format", "csv"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`wrote 2 row(s)`);
    const text = await readFile(path.join(dir, "out", r.job.jobId, "results.csv"), "utf8");
    return { run: r, text, rows: parse(text, { columns: true }) as Record<string, string>[] };
  };

  it("a JSON job: one row per item, one column per answer field, values as in answer.json", async () => {
    const schema = {
      type: "object",
      properties: { company: { type: "string" }, figures: { type: "object", properties: { revenue: { type: "number" } }, required: ["revenue"] }, risks: { type: "array", items: { type: "string" } } },
      required: ["company", "figures", "risks"],
    };
    const { run, rows, text } = await runJob("csv-json", `prompt: Summarise.\nmaxOutputTokens: 512\noutput: { format: json, schema: ${JSON.stringify(schema)} }\n`);
    expect(run.manifest.status).toBe("succeeded");
    const header = text.split("\r\n")[0]!.split(",");
    expect(header).toEqual([...CSV_BASE_COLUMNS, "answer.company", "answer.figures.revenue", "answer.risks"]);
    expect(rows.map((r) => r.id)).toEqual(run.manifest.items.map((i) => i.id));
    for (const [n, item] of run.manifest.items.entries()) {
      const answer = JSON.parse(await readFile(path.join(run.outDir, item.answer!), "utf8")) as { company: string; figures: { revenue: number }; risks: string[] };
      expect(rows[n]).toMatchObject({
        documents: item.documents.join("; "),
        status: "succeeded",
        error_kind: "",
        cost_usd: String(item.costUsd),
        input_tokens: String(item.usage.inputTokens),
        answer_path: item.answer,
        "answer.figures.revenue": String(answer.figures.revenue),
        "answer.risks": JSON.stringify(answer.risks),
      });
      // A string the model wrote comes back as written, unless a spreadsheet would run it.
      expect(rows[n]!["answer.company"]).toBe(/^[=+\-@\t\r]/.test(answer.company) ? `'${answer.company}` : answer.company);
    }
    // A document name with a comma and quotes stays one field.
    expect(rows[0]!.documents).toMatch(/a, "first"\.md$/);
  }, 60_000);

  it("a text job: the answer text in one column, line breaks and all", async () => {
    const { run, rows, text } = await runJob("csv-text", "prompt: Summarise.\nmaxOutputTokens: 256\n");
    expect(text.split("\r\n")[0]!.split(",")).toEqual([...CSV_BASE_COLUMNS, "answer"]);
    for (const [n, item] of run.manifest.items.entries()) {
      const answer = await readFile(path.join(run.outDir, item.answer!), "utf8");
      expect(answer).toContain("\n");
      expect(rows[n]!.answer).toBe(answer);
    }
  }, 60_000);

  it("a text job asking several questions, one call each: one answer.<questionId> column per question", async () => {
    const questions = "questions:\n  - id: revenue\n    ask: What is the revenue?\n  - id: risks\n    ask: What are the risks?\ncalls: per-question\nmaxOutputTokens: 256\n";
    const { run, rows, text } = await runJob("csv-questions", questions);
    expect(run.manifest.status).toBe("succeeded");
    expect(text.split("\r\n")[0]!.split(",")).toEqual([...CSV_BASE_COLUMNS, "answer.revenue", "answer.risks"]);
    for (const [n, item] of run.manifest.items.entries()) {
      const answer = await readFile(path.join(run.outDir, item.answer!), "utf8");
      const [revenue, risks] = [rows[n]!["answer.revenue"]!, rows[n]!["answer.risks"]!];
      expect(revenue.length).toBeGreaterThan(0);
      expect(risks.length).toBeGreaterThan(0);
      // The cells are the file's two sections, headings and separators removed, nothing else lost.
      expect(answer).toBe(`## revenue\n\n${revenue}\n\n## risks\n\n${risks}`);
    }
  }, 60_000);
});

describe("splitting a per-question answer", () => {
  it("keeps an answer's own headings in its cell and tolerates an answer not in the joined form", () => {
    const joined = "## a\n\nfirst\n\n## b is not a question\n\n## b\n\nsecond";
    expect([...splitByQuestion(joined, ["a", "b"])]).toEqual([["answer.a", "first\n\n## b is not a question"], ["answer.b", "second"]]);
    expect([...splitByQuestion("plain text", ["a", "b"])]).toEqual([["answer.a", "plain text"]]);
  });
});
