import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadJobFile, parseJobText } from "../shared/job/load.ts";
import { resolveLocalDocuments } from "../shared/job/resolve.ts";
import { redactUrl } from "../shared/log.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

const cli = async (args: string[], env: Record<string, string> = {}, cwd?: string) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.resolve("bin/longdoc.ts"), ...args], {
      env: { ...process.env, DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "", ...env },
      timeout: 60_000,
      cwd,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

/** A job folder in the temp dir with one small Markdown document. */
async function jobDir(prefix: string, yaml = "name: h\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\n") {
  const dir = await mkdtemp(path.join(tmpdir(), `longdoc-hard-${prefix}-`));
  await mkdir(path.join(dir, "docs"));
  await writeFile(path.join(dir, "docs", "a.md"), "# Memo\n\nCash rose.\n");
  const job = path.join(dir, "job.yaml");
  await writeFile(job, yaml);
  return { dir, job };
}

describe("run checks every option before submitting anything (item 2)", () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(async () => {
    await sim.stop();
  });

  const cases: [string, (dir: string) => string[], RegExp][] = [
    ["--out a file", (dir) => ["--out", "/etc/passwd", "--state", path.join(dir, "state")], /^longdoc: --out \/etc\/passwd: is a file, not a folder$/],
    ["--out under a file", (dir) => ["--out", "/etc/passwd/out", "--state", path.join(dir, "state")], /^longdoc: --out \/etc\/passwd\/out: cannot be created \(\/etc\/passwd is a file, not a folder\)$/],
    ["--state a file", (dir) => ["--out", path.join(dir, "out"), "--state", "/etc/hostname"], /^longdoc: --state \/etc\/hostname: is a file, not a folder$/],
    ["--workers 0", (dir) => ["--out", path.join(dir, "out"), "--state", path.join(dir, "state"), "--workers", "0"], /^longdoc: --workers must be a whole number from 1 to 64, got '0'$/],
    ["--workers 65", (dir) => ["--out", path.join(dir, "out"), "--state", path.join(dir, "state"), "--workers", "65"], /^longdoc: --workers must be a whole number from 1 to 64, got '65'$/],
  ];
  for (const [name, args, message] of cases) {
    it(`${name}: exit 2, one line naming the option, no model call`, async () => {
      const { dir, job } = await jobDir("opts");
      const before = sim.calls.length;
      const r = await cli(["run", job, ...args(dir)], { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL });
      expect(r.code).toBe(2);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(message);
      expect(sim.calls.length).toBe(before);
      expect(existsSync(path.join(dir, "state"))).toBe(false);
    });
  }
});

describe("documents must stay inside the job's folder or the repository (item 5)", () => {
  it("refuses ../ paths, absolute paths and symlinks that lead outside, unless allowed", async () => {
    const depth = path.resolve(tmpdir()).split(path.sep).length + 1;
    const up = Array.from({ length: depth }, () => "..").join("/");
    const cases = [`${up}/etc/passwd`, "/etc/hostname", "docs/hosts.md"];
    for (const docPath of cases) {
      const { dir, job } = await jobDir("outside", `name: h\ndocuments:\n  - path: ${docPath}\nprompt: Summarise.\n`);
      await symlink("/etc/hosts", path.join(dir, "docs", "hosts.md"));
      const spec = await loadJobFile(job);
      await expect(resolveLocalDocuments(spec, job)).rejects.toThrow(
        new RegExp(`documents\\[0\\]\\.path: '${docPath.replace(/[.*/]/g, "\\$&")}' resolves to .*/etc/(passwd|hostname|hosts), outside the job file's folder and the current repository.*--allow-outside`),
      );
      const allowed = await resolveLocalDocuments(spec, job, { allowOutside: true });
      expect(allowed).toHaveLength(1);
      // Each command goes through the same check: its wiring is shown once, with the symlink.
      if (docPath !== "docs/hosts.md") continue;

      const v = await cli(["validate", job]);
      expect(v.code).toBe(1);
      expect(v.stdout).toContain(`'${docPath}' resolves to`);
      expect((await cli(["validate", "--allow-outside", job])).code).toBe(0);
      const r = await cli(["run", job, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`'${docPath}' resolves to`);
      expect(existsSync(path.join(dir, "state"))).toBe(false);
      const e = await cli(["estimate", job]);
      expect(e.code).toBe(1);
      expect(e.stderr).toContain("--allow-outside");
    }
  });

  it("accepts a glob inside the job's folder and a symlink that stays inside it", async () => {
    const { dir, job } = await jobDir("inside");
    await symlink(path.join(dir, "docs", "a.md"), path.join(dir, "docs", "b.md"));
    const docs = await resolveLocalDocuments(await loadJobFile(job), job);
    expect(docs.map((d) => path.basename(d.absolutePath))).toEqual(["a.md", "b.md"]);
  });
});

describe("credentials in QWEN_BASE_URL never reach the terminal (item 6)", () => {
  it("redactUrl hides user and password", () => {
    expect(redactUrl("http://user:password@host:8080/v1")).toBe("http://***:***@host:8080/v1");
    expect(redactUrl("https://dashscope-intl.aliyuncs.com/compatible-mode/v1")).toBe("https://dashscope-intl.aliyuncs.com/compatible-mode/v1");
    expect(redactUrl("http://user:pa ss@host:bad/v1")).not.toContain("pa ss");
  });

  it("run with a key: the endpoint is printed without the password", async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const { dir, job } = await jobDir("cred");
      const url = sim.baseURL.replace("http://", "http://user:hunter2secret@");
      const r = await cli(["run", job, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: url, LONGDOC_LOG: "info" });
      expect(r.stderr).toMatch(/model qwen3-max at http:\/\/\*\*\*:\*\*\*@127\.0\.0\.1/);
      expect(r.stdout + r.stderr).not.toContain("hunter2secret");
    } finally {
      await sim.stop();
    }
  });

  it("without a key, and when the URL does not parse: no password either", async () => {
    const { dir, job } = await jobDir("cred2");
    const r = await cli(["run", job, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], { QWEN_BASE_URL: "http://user:hunter2secret@127.0.0.1:9/v1" });
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain("hunter2secret");
    const bad = await cli(["run", job, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], { DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: "http://user:hunter2secret@host:99999/v1" });
    expect(bad.code).toBe(2);
    expect(bad.stdout + bad.stderr).not.toContain("hunter2secret");
  });
});

describe("a YAML alias bomb is refused as file:line: message (item 7)", () => {
  it("validate prints one problem line, no stack trace", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-hard-bomb-"));
    const file = path.join(dir, "bomb.yaml");
    const levels = ["a", "b", "c", "d", "e", "f", "g", "h"];
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...levels.slice(1).map((l, i) => `${l}: &${l} [${Array(9).fill(`*${levels[i]}`).join(",")}]`)];
    await writeFile(file, `name: bomb\n${lines.join("\n")}\ndocuments:\n  - path: x.md\nprompt: p\n`);
    const r = await cli(["validate", file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${file}:3: (yaml): aliases expand too far (more than 100 alias uses); a job file needs no anchors or aliases\n`);
    expect(r.stderr).not.toMatch(/at |ReferenceError/);
  });
});

describe("validate runs every check run makes before calling the model (item 8)", () => {
  it("a glob that matches nothing", async () => {
    const { job } = await jobDir("glob", "name: g\ndocuments:\n  - path: nowhere/*.pdf\nprompt: p\n");
    const r = await cli(["validate", job]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/documents\[0\]\.path: 'nowhere\/\*\.pdf' matches no file/);
  });

  it("an output schema that does not compile (inline and from a file)", async () => {
    const { dir, job } = await jobDir("schema", "name: s\ndocuments:\n  - path: docs/*.md\nprompt: p\noutput: { format: json, schema: { type: nonsense } }\n");
    const r = await cli(["validate", job]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/output\.schema: .*nonsense|output\.schema: schema is invalid/);
    await writeFile(path.join(dir, "schema.json"), "{ not json");
    await writeFile(job, "name: s\ndocuments:\n  - path: docs/*.md\nprompt: p\noutput: { format: json, schemaFile: schema.json }\n");
    const f = await cli(["validate", job]);
    expect(f.code).toBe(1);
    expect(f.stdout).toMatch(/output\.schemaFile: schema\.json: not valid JSON \(at byte \d+\); a schema file holds one JSON Schema object/);
  });
});

describe("QWEN_BASE_URL without DASHSCOPE_API_KEY says why it is not used (item 9)", () => {
  it("run prints the note and uses its own simulator; the sim banner asks for both variables", async () => {
    const { dir, job } = await jobDir("nokey");
    const r = await cli(["run", job, "--state", path.join(dir, "state"), "--out", path.join(dir, "out")], { QWEN_BASE_URL: "http://127.0.0.1:9/compatible-mode/v1" });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("note: QWEN_BASE_URL is set (http://127.0.0.1:9/compatible-mode/v1) but DASHSCOPE_API_KEY is not, so it is not used");
    const quiet = await cli(["run", job, "--state", path.join(dir, "state2"), "--out", path.join(dir, "out")]);
    expect(quiet.stderr).not.toContain("QWEN_BASE_URL is set");
  });

  it("longdoc sim's banner tells users to export both variables", async () => {
    const child = spawn(process.execPath, [path.resolve("bin/longdoc.ts"), "sim", "--port", "0", "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("Ctrl-C")) resolve();
      });
      child.on("exit", () => reject(new Error(`sim exited: ${out}`)));
    });
    child.kill("SIGTERM");
    expect(out).toMatch(/export QWEN_BASE_URL=http:\/\/127\.0\.0\.1:\d+\/compatible-mode\/v1\n\s+export DASHSCOPE_API_KEY=\S+/);
  });
});

describe("small input checks (item 10)", () => {
  it("a question or prompt of only whitespace is refused", () => {
    const base = "name: w\ndocuments:\n  - path: x.md\n";
    expect(() => parseJobText(base + "questions:\n  - id: q\n    ask: '   '\n", "w.yaml")).toThrow("w.yaml:6: questions[0].ask: must not be empty or only whitespace");
    expect(() => parseJobText(base + "prompt: \"  \\n\\t\"\n", "w.yaml")).toThrow("w.yaml:4: prompt: must not be empty or only whitespace");
  });

  it("extract of a missing file exits 1 (the input's fault), not 2", async () => {
    const r = await cli(["extract", "no/such/file.pdf"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("longdoc: no/such/file.pdf: no such file\n");
  });

  it("dotfiles a glob skips are named in a warning", async () => {
    const { dir, job } = await jobDir("dot");
    await writeFile(path.join(dir, "docs", ".draft.md"), "# Draft\n");
    await mkdir(path.join(dir, "docs", ".old"));
    await writeFile(path.join(dir, "docs", ".old", "x.md"), "# Old\n");
    const r = await cli(["validate", job]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: .*documents\[0\]\.path: 'docs\/\*\.md' skips 1 dotfile\(s\).*docs\/\.draft\.md\n$/);
    await writeFile(job, "name: h\ndocuments:\n  - path: docs/**/*.md\nprompt: Summarise.\n");
    const deep = await cli(["validate", job]);
    expect(deep.stderr).toMatch(/skips 2 dotfile\(s\).*docs\/\.draft\.md, .*docs\/\.old\/x\.md/);
  });
});
