// The model catalog that follows the provider: its schema (every model states its tokenizer and
// where each fact comes from), `longdoc models`, estimated counts for tokenizers longdoc does not
// carry, json_object models, and a model the endpoint no longer serves.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import builtin from "../shared/model/models.json" with { type: "json" };
import { checkFits } from "../shared/model/budget.ts";
import { getModel, loadCatalog, SOURCED_FACTS, successorsOf, TOKENIZERS } from "../shared/model/catalog.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { loadSettings } from "../shared/settings.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { startRecordingProxy } from "./helpers/recording-proxy.ts";

const root = new URL("..", import.meta.url).pathname;

describe("the model catalog", () => {
  it("states for every model its line, tokenizer, structured output and a tagged source for each fact", () => {
    const models = Object.entries(builtin.models);
    expect(models.length).toBeGreaterThanOrEqual(10);
    for (const [id, m] of models as [string, Record<string, unknown> & { sources: Record<string, string> }][]) {
      expect(Object.keys(TOKENIZERS), id).toContain(m.tokenizer);
      expect(["json_schema", "json_object"], id).toContain(m.structuredOutput);
      expect(["max", "plus", "flash"], id).toContain(m.line);
      for (const fact of SOURCED_FACTS) expect(m.sources[fact], `${id}: sources.${fact}`).toMatch(/\[(V|O|S|A)\b/);
    }
    // The lines the provider sells today, each with a current model; qwen3-max stays the default.
    const catalog = loadCatalog();
    for (const line of ["max", "plus", "flash"]) expect(Object.values(catalog.all).some((m) => m.line === line && m.status === "current"), line).toBe(true);
    expect(getModel(catalog, "qwen3-max")).toMatchObject({ tokenizer: "qwen3", countMargin: 0, structuredOutput: "json_schema" });
    expect(getModel(catalog, "qwen3.7-max")).toMatchObject({ contextTokens: 1_000_000, tokenizer: "qwen3.5", countMargin: 0.1 });
  });

  it("refuses a model without a tokenizer or with an untagged or missing source, naming the field", () => {
    const dir = path.join(tmpdir(), `longdoc-cat-${process.pid}`);
    const file = (name: string, body: unknown) => {
      const p = path.join(dir, name);
      return mkdir(dir, { recursive: true }).then(() => writeFile(p, JSON.stringify(body))).then(() => p);
    };
    const { sources, tokenizer: _t, ...noTokenizer } = builtin.models["qwen-flash"] as Record<string, unknown> & { sources: Record<string, string> };
    return Promise.all([
      file("no-tok.json", { models: { mine: noTokenizer } }),
      file("untagged.json", { models: { mine: { ...builtin.models["qwen-flash"], sources: { ...sources, prices: "from a blog" } } } }),
      file("missing.json", { models: { mine: { ...builtin.models["qwen-flash"], sources: { ...sources, rpm: undefined } } } }),
    ]).then(([a, b, c]) => {
      expect(() => loadCatalog(a)).toThrow(/no-tok\.json: models\.mine\.tokenizer/);
      expect(() => loadCatalog(b)).toThrow(/untagged\.json: models\.mine\.sources\.prices: must carry a tag/);
      expect(() => loadCatalog(c)).toThrow(/missing\.json: models\.mine\.sources\.rpm: missing/);
    });
  });

  it("adds the stated safety margin to counts for a tokenizer longdoc does not carry", () => {
    const catalog = loadCatalog();
    const exact = getModel(catalog, "qwen-flash");
    const estimated = getModel(catalog, "qwen3.7-max");
    // 950,000 counted tokens fit qwen-flash's 995,904 input exactly; with 10 % added they do not fit qwen3.7-max's same limit.
    expect(() => checkFits(exact, 950_000, { maxOutputTokens: 1000 })).not.toThrow();
    expect(() => checkFits(estimated, 950_000, { maxOutputTokens: 1000 })).toThrow(/1045000 tokens \(an estimate: longdoc does not carry qwen3\.7-max's tokenizer, so 950000 counted with Qwen3's plus a 10 % safety margin\)/);
  });

  it("longdoc models prints the catalog, and --json carries every model's facts and sources", () => {
    const env = { ...process.env, DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "", LONGDOC_CATALOG: "", LONGDOC_REGION: "" };
    const text = spawnSync(process.execPath, ["bin/longdoc.ts", "models"], { cwd: root, env, encoding: "utf8" });
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^qwen3-max \*\s+max\s+current\s+256K\s+252K/m);
    expect(text.stdout).toMatch(/^qwen3\.7-max\s+max\s+current\s+1M .* json_object\s+qwen3\.5 estimate \+10%/m);
    // Beijing has no prices for the newer models: listed, and said to be unavailable there.
    const beijing = spawnSync(process.execPath, ["bin/longdoc.ts", "models"], { cwd: root, env: { ...env, LONGDOC_REGION: "cn-beijing" }, encoding: "utf8" });
    expect(beijing.stdout).toContain("The endpoint's region: China (Beijing) (CNY).");
    expect(beijing.stdout).toMatch(/Not offered in China \(Beijing\) \(no prices for it, or retired\): qwen3\.7-max, qwen3\.6-max-preview, .*qwen3\.5-flash\./);
    const json = spawnSync(process.execPath, ["bin/longdoc.ts", "models", "--json"], { cwd: root, env, encoding: "utf8" });
    expect(json.status).toBe(0);
    const report = JSON.parse(json.stdout) as { default: string; region: string; models: { id: string; tokenizer: { counts: string }; sources: Record<string, string>; prices: Record<string, { currency: string }> }[] };
    expect(report).toMatchObject({ default: "qwen3-max", region: "ap-southeast-1" });
    expect(report.models.map((m) => m.id)).toEqual(Object.keys(builtin.models));
    const flash = report.models.find((m) => m.id === "qwen-flash")!;
    expect(flash.tokenizer.counts).toBe("exact");
    expect(flash.prices["cn-beijing"]!.currency).toBe("CNY");
    expect(flash.sources.rpm).toMatch(/^\[S\] T5/);
  });

  it("names the current models of a line as its successors, previews last", () => {
    const catalog = loadCatalog();
    expect(successorsOf(catalog, "qwen3-max-2025-09-23")).toEqual(["qwen3-max", "qwen3.7-max", "qwen3-max-preview", "qwen3.6-max-preview"]);
    // A model the catalog has never heard of: its line is read from its name.
    expect(successorsOf(catalog, "qwen-plus-2025-01-25")).toEqual(["qwen3.7-plus", "qwen3.6-plus", "qwen3.5-plus"]);
  });
});

describe("the catalog against the endpoint", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-models-"));
    for (const n of ["a", "b", "c"]) await writeFile(path.join(dir, `${n}.md`), `# ${n}\n\nRevenue rose ${n.charCodeAt(0) % 10}% on pricing.\n`);
    await writeFile(path.join(dir, "answer.json"), JSON.stringify({ type: "object", additionalProperties: false, required: ["growth"], properties: { growth: { type: "string" } } }));
  });
  const run = (name: string, body: string, env: Record<string, string> = {}) =>
    writeFile(path.join(dir, `${name}.yaml`), `name: ${name}\ndocuments:\n  - path: "*.md"\nprompt: What rose?\nthinking: { enabled: false }\nmaxOutputTokens: 400\n${body}`).then(() =>
      runLocalJob({ inProcess: true, jobFile: path.join(dir, `${name}.yaml`), outDir: path.join(dir, "out", name), workers: 1, settings: loadSettings({ ...loop.env(), ...env }), log: silentLog, stack: loop.stack, fresh: true, timing: { backoffBaseMs: 10, backoffCapMs: 10 } }),
    );

  it("a 404 on a retired model halts the job with the catalog's current models of its line named", async () => {
    const before = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "404", count: 100 });
    try {
      const r = await run("gone", "model: qwen3-max-2025-09-23\n");
      expect(r.manifest.status).toBe("halted");
      expect(loop.sim.calls.length - before).toBe(1);
      const failed = r.manifest.items.find((i) => i.status === "failed")!;
      expect(failed.error!.kind).toBe("model_not_found");
      expect(failed.error!.message).toContain("the endpoint does not serve qwen3-max-2025-09-23");
      expect(failed.error!.message).toContain("set the job's model to one of the catalog's current Max models priced in Singapore: qwen3-max, qwen3.7-max, qwen3-max-preview, qwen3.6-max-preview");
      expect(failed.error!.message).toContain("The model qwen3-max-2025-09-23 does not exist or you do not have access to it.");
      expect(r.manifest.items.filter((i) => i.status === "skipped").every((i) => i.error?.kind === "halted")).toBe(true);
    } finally {
      loop.sim.clearFaults();
    }
  });

  it("a model with json_object only gets json_object and the schema in the prompt, and its answers are validated", async () => {
    const proxy = await startRecordingProxy(loop.sim.baseURL);
    try {
      const r = await run("objects", "model: qwen3.7-max\noutput: { format: json, schemaFile: answer.json }\n", { QWEN_BASE_URL: proxy.baseURL });
      const bodies = proxy.requests.filter((q) => q.path.endsWith("/chat/completions")).map((q) => JSON.parse(q.body) as { response_format: unknown; messages: { role: string; content: unknown }[] });
      expect(bodies.length).toBeGreaterThanOrEqual(3);
      for (const b of bodies) {
        expect(b.response_format).toEqual({ type: "json_object" });
        expect(JSON.stringify(b.messages.at(-1)!.content)).toContain('matches this JSON Schema:\\n{\\"type\\":\\"object\\"');
      }
      // The simulator's json_object answer ({answer, proof, documents}) never matches this schema:
      // longdoc validates it, asks for a repair, and fails the item rather than pass it on.
      expect(r.manifest.items.map((i) => i.error?.kind)).toEqual(["output_invalid", "output_invalid", "output_invalid"]);
    } finally {
      await proxy.stop();
    }
  });
});
