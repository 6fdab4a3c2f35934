import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCode, SANDBOX_NOW_MS } from "../shared/tools/code.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

const BIN = path.resolve("bin/longdoc.ts");

const cli = async (args: string[], env: Record<string, string> = {}, timeout = 60_000) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "", LONGDOC_WEBHOOK_SECRET: "", ...env }, timeout });
    return { code: 0, stdout, stderr, text: stdout + stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr, text: err.stdout + err.stderr };
  }
};

async function jobFolder(prefix: string, yaml: string, files: Record<string, string> = { "docs/a.md": "# Memo\n\nCash rose 4%.\n" }) {
  const dir = await mkdtemp(path.join(tmpdir(), `longdoc-inputs-${prefix}-`));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  await writeFile(path.join(dir, "job.yaml"), yaml);
  return { dir, job: path.join(dir, "job.yaml") };
}

const schemaJob = (file: string) => `name: s\ndocuments:\n  - path: docs/a.md\nprompt: Give the figure.\noutput:\n  format: json\n  schemaFile: ${JSON.stringify(file)}\n`;

describe("output.schemaFile is confined as documents are, and never quoted in errors", () => {
  const secret = `LONGDOC_TEST_MARKER_${process.pid}`;
  it("/etc/passwd, /proc/self/environ and a JSON file outside the job's folder are refused without --allow-outside", async () => {
    const outside = await mkdtemp(path.join(tmpdir(), "longdoc-outside-"));
    await writeFile(path.join(outside, "schema.json"), JSON.stringify({ type: "object", properties: { leaked: { type: "string", description: "outside" } } }));
    for (const file of ["/etc/passwd", "/proc/self/environ", path.join(outside, "schema.json"), "../" + path.basename(outside) + "/schema.json"]) {
      const { job } = await jobFolder("outside", schemaJob(file));
      const r = await cli(["validate", job], { [secret]: "environment-value-that-must-not-leak" });
      expect(r.code, r.stderr).toBe(1);
      expect(r.text).toMatch(/output\.schemaFile: .* outside the job file's folder and the current repository .*--allow-outside/);
      expect(r.text).not.toMatch(/root:x|environment-value|leaked/);
    }
  });

  it("with --allow-outside: a file that is not JSON is named, its contents are not; a device is not a regular file", async () => {
    const { job } = await jobFolder("passwd", schemaJob("/etc/passwd"));
    const r = await cli(["validate", job, "--allow-outside"]);
    expect(r.code).toBe(1);
    expect(r.text.trim()).toMatch(/output\.schemaFile: \/etc\/passwd: not valid JSON( \(at byte \d+\))?; a schema file holds one JSON Schema object$/);
    expect(r.text).not.toContain("root");
    const env = await jobFolder("environ", schemaJob("/proc/self/environ"));
    const e = await cli(["validate", env.job, "--allow-outside"], { [secret]: "environment-value-that-must-not-leak" });
    expect(e.code).toBe(1);
    expect(e.text).not.toMatch(/environment-value|PATH=/);
    const dev = await jobFolder("zero", schemaJob("/dev/zero"));
    const z = await cli(["validate", dev.job, "--allow-outside"]);
    expect(z.code).toBe(1);
    expect(z.text).toMatch(/\/dev\/zero: not a regular file/);
  });

  it("a schema file beside the job is read as before", async () => {
    const { job } = await jobFolder("inside", schemaJob("schema.json"), {
      "docs/a.md": "# Memo\n\nCash rose 4%.\n",
      "schema.json": JSON.stringify({ type: "object", properties: { rise: { type: "number" } }, required: ["rise"] }),
    });
    const r = await cli(["validate", job]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("small ones", () => {
  it("--workers takes plain decimal whole numbers only: 0x10 and 1e1 are refused", async () => {
    const { dir, job } = await jobFolder("workers", "name: w\ndocuments:\n  - path: docs/a.md\nprompt: Summarise.\n");
    for (const value of ["0x10", "1e1", "+4", "4.0", " 4"]) {
      const r = await cli(["run", job, "--workers", value, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")]);
      expect(r.code, `${value}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim()).toBe(`longdoc: --workers must be a whole number from 1 to 64, got '${value}'`);
    }
  });

  it("batch custom_ids that are Windows device names (con, aux, nul.txt, COM1) are refused with the reason", async () => {
    const line = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "qwen3-max", messages: [{ role: "user", content: "hi" }] } });
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-inputs-batch-"));
    const file = path.join(dir, "batch.jsonl");
    await writeFile(file, ["con", "aux", "nul.txt", "COM1", "lpt9.log", "console", "com10"].map(line).join("\n") + "\n");
    const r = await cli(["validate", file]);
    expect(r.code).toBe(1);
    const lines = r.text.trim().split("\n");
    for (const [n, id, device] of [[1, "con", "CON"], [2, "aux", "AUX"], [3, "nul.txt", "NUL"], [4, "COM1", "COM1"], [5, "lpt9.log", "LPT9"]] as const) {
      expect(lines).toContain(`${file}:${n}: custom_id: "${id}" cannot be an item id: '${device}' is a Windows device name, so out/ could not hold its folder there; rename it (say "item-${id}")`);
    }
    expect(r.text).not.toMatch(/"console"|"com10"/);
  });

  it("a YAML merge key (<<) is named as one, not taken for a misspelt field", async () => {
    const { job } = await jobFolder("merge", "name: m\ndocuments:\n  - &doc\n    path: docs/a.md\n  - <<: *doc\nprompt: Summarise.\n");
    const r = await cli(["validate", job]);
    expect(r.code).toBe(1);
    expect(r.text.trim()).toBe(`${job}:5: <<: a YAML merge key, which job files do not take (YAML 1.2 has no merge keys); write the fields out where they are needed`);
  });

  it("the code tool's clock and Math.random are the same in every run", async () => {
    const script = "[Date.now(), new Date().getTime(), Date(), Math.random(), Math.random(), new Date(2020, 0, 2).getFullYear()]";
    const [a, b] = [await runCode(script), await runCode(script)];
    expect(a.ok, a.error ?? "").toBe(true);
    expect(a.value).toBe(b.value);
    const [now, fromNew, , r1, r2, year] = JSON.parse(a.value!) as [number, number, string, number, number, number];
    expect([now, fromNew]).toEqual([SANDBOX_NOW_MS, SANDBOX_NOW_MS]);
    expect(r1).not.toBe(r2);
    expect(r1).toBeGreaterThanOrEqual(0);
    expect(r1).toBeLessThan(1);
    expect(year).toBe(2020);
  });

  it("a script that leaves QuickJS unable to free its runtime prints no Emscripten abort to stderr", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-inputs-abort-"));
    const file = path.join(dir, "abort.ts");
    // A cyclic completion value: freeing the runtime afterwards trips a QuickJS assertion.
    await writeFile(file, `import { runCode } from ${JSON.stringify(path.resolve("shared/tools/code.ts"))};\nconst r = await runCode("(() => { const a = []; a[0] = a; return a })()");\nconsole.log(JSON.stringify({ ok: r.ok }));\n`);
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [file], { encoding: "utf8" });
    expect(JSON.parse(stdout.trim())).toHaveProperty("ok");
    expect(stderr).not.toMatch(/Aborted|Assertion failed/);
  });
});

describe("a job file run again after cancel", () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, decodeTokensPerSecond: 200 });
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("is refused with the job's id and `retry`; retry then finishes it without paying again for what succeeded", async () => {
    const docs: Record<string, string> = {};
    for (let i = 0; i < 4; i++) docs[`docs/r${i}.md`] = `# Report ${i}\n\n${Array.from({ length: 20 }, (_, j) => `Line ${j}: sales in region ${i} rose ${j} percent.`).join("\n")}\n`;
    const { dir, job } = await jobFolder("cancel", "name: c\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nthinking: { enabled: false }\nmaxOutputTokens: 400\n", docs);
    const env = { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL };
    const state = ["--state", path.join(dir, "state"), "--out", path.join(dir, "out")];
    // A run stopped (SIGINT) after its first answer, then cancelled.
    const run = spawn(process.execPath, [BIN, "run", job, "--workers", "1", ...state], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    run.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => run.on("exit", (code) => r(code)));
    await expect.poll(() => sim.calls.filter((c) => c.outcome === "ok").length, { timeout: 40_000, interval: 50 }).toBeGreaterThanOrEqual(1);
    run.kill("SIGINT");
    expect(await exited, err).toBe(130);
    const jobId = /job (\S+): 4 item/.exec(err)![1]!;
    const cancel = await cli(["cancel", jobId, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], env);
    expect(cancel.code, cancel.stderr).toBe(0);

    const again = await cli(["run", job, ...state], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${jobId}, was cancelled`);
    expect(again.stderr).toContain(`longdoc retry ${jobId} --state ${path.join(dir, "state")}`);
    expect(again.stderr).toContain("--new");

    const retry = await cli(["retry", jobId, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], env, 90_000);
    expect(retry.code, retry.stderr).toBe(0);
    const full = new Map<string, number>();
    for (const c of sim.calls) if (c.outcome === "ok") for (const d of c.documents) full.set(d.source, (full.get(d.source) ?? 0) + 1);
    expect([...full.values()].every((n) => n === 1), JSON.stringify([...full])).toBe(true);
    expect(full.size).toBe(4);
  }, 150_000);
});
