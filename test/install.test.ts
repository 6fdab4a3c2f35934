// The package as a user installs it: `npm pack`, the tarball unpacked into a folder outside the
// repository beside its runtime dependencies, then the `longdoc` command, `estimate --json` and
// an import of every exported function, and a TypeScript consumer type-checked against the
// declarations. The dependencies are linked from this checkout's node_modules (only those
// package.json lists as dependencies, so an import of a devDependency fails here as it would
// installed). `npm run test:install` installs the tarball with npm itself instead (the registry
// for what the npm cache lacks, about a minute and a half), and LONGDOC_TEST_NODES (paths of node
// binaries, comma-separated) runs the command under each of those Nodes too.
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers/cli.ts";

const exec = promisify(execFile);
const pkg = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { version: string; dependencies: Record<string, string>; engines: { node: string } };
const EXPORTED = ["run", "estimate", "validate", "submit", "status", "results", "cancel", "retry"];

/** Runs a command; resolves with its code and output whatever the code. */
async function sh(file: string, args: string[], opts: { cwd: string; env?: Record<string, string | undefined> }): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(file, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: 240_000, maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** `npm pack` of this checkout (its prepack compiles dist/) into `dir`; the tarball's path. */
export async function packTarball(dir: string): Promise<string> {
  const r = await sh("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: ROOT });
  if (r.code !== 0) throw new Error(`npm pack failed (${r.code}): ${r.stderr}`);
  return path.join(dir, r.stdout.trim().split("\n").pop()!);
}

describe("the packed package, installed outside the repository", () => {
  let dir: string;
  let app: string;
  let bin: string;
  let files: string[];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-install-"));
    const tarball = await packTarball(dir);
    files = (await sh("tar", ["tzf", tarball], { cwd: dir })).stdout.trim().split("\n");
    // A project of the user's: node_modules/longdoc from the tarball, its dependencies beside it.
    app = path.join(dir, "app");
    const modules = path.join(app, "node_modules");
    await mkdir(app);
    await writeFile(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    bin = path.join(modules, ".bin", "longdoc");
    if (process.env.LONGDOC_TEST_NPM_INSTALL) {
      const r = await sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], { cwd: app });
      if (r.code !== 0) throw new Error(`npm install failed (${r.code}): ${r.stderr}`);
    } else {
      await mkdir(path.join(modules, "longdoc"), { recursive: true });
      await sh("tar", ["xzf", tarball, "-C", path.join(modules, "longdoc"), "--strip-components=1"], { cwd: dir });
      for (const dep of Object.keys(pkg.dependencies)) {
        await mkdir(path.dirname(path.join(modules, dep)), { recursive: true });
        await symlink(path.join(ROOT, "node_modules", dep), path.join(modules, dep), "dir");
      }
      await mkdir(path.join(modules, ".bin"));
      await symlink("../longdoc/bin/longdoc.js", bin);
    }
    // A job of the user's, with its documents, outside the repository.
    await cp(path.join(ROOT, "jobs", "examples", "docs"), path.join(app, "docs"), { recursive: true });
    await writeFile(path.join(app, "job.yaml"), "name: try-install\ndocuments:\n  - path: docs/*.md\nprompt: Summarise the filing.\nmaxOutputTokens: 512\n");
  }, 300_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("holds the compiled command and API with their declarations, and neither sources nor tests", () => {
    expect(files).toEqual(expect.arrayContaining(["package/package.json", "package/bin/longdoc.js", "package/dist/bin/longdoc.js", "package/dist/cli/api.js", "package/dist/cli/api.d.ts", "package/dist/shared/local/worker-process.js", "package/dist/shared/tokens/qwen3-data.json"]));
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files.filter((f) => /(^|\/)test\//.test(f))).toEqual([]);
  });

  it("longdoc --version and estimate --json work from the installed bin (this Node)", async () => {
    const v = await sh(bin, ["--version"], { cwd: app });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const e = await sh(bin, ["estimate", "job.yaml", "--json", "--limit", "1"], { cwd: app, env: { DASHSCOPE_API_KEY: "" } });
    expect(e.code, e.stderr).toBe(0);
    const est = JSON.parse(e.stdout) as { job: string; items: { id: string; inputTokens: number }[] };
    expect(est.job).toBe("try-install");
    expect(est.items).toHaveLength(1);
    expect(est.items[0]!.inputTokens).toBeGreaterThan(100);
  }, 120_000);

  it("import { ... } from 'longdoc' gives every exported function, and estimate() returns what estimate --json prints", async () => {
    const script = path.join(app, "use.mjs");
    await writeFile(
      script,
      `import * as longdoc from "longdoc";\n` +
        `const names = ${JSON.stringify(EXPORTED)}.filter((n) => typeof longdoc[n] === "function");\n` +
        `const est = await longdoc.estimate("job.yaml", { limit: 1, env: {} });\n` +
        `let error = null;\ntry { await longdoc.estimate("missing.yaml", { env: {} }); } catch (e) { error = { name: e.name, code: e.code, isLongdoc: longdoc.LongdocError.is(e) }; }\n` +
        `const v = await longdoc.validate("job.yaml", { env: {} });\n` +
        `process.stdout.write(JSON.stringify({ names, est, v, error }));\n`,
    );
    const r = await sh(process.execPath, [script], { cwd: app });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { names: string[]; est: unknown; v: { ok: boolean; files: { ok: boolean; job: string }[] }; error: unknown };
    expect(out.names).toEqual(EXPORTED);
    const cli = await sh(bin, ["estimate", "job.yaml", "--json", "--limit", "1"], { cwd: app, env: { DASHSCOPE_API_KEY: "" } });
    expect(out.est).toEqual(JSON.parse(cli.stdout));
    expect(out.v).toMatchObject({ ok: true, files: [{ ok: true, job: "try-install" }] });
    // A failure rejects with a LongdocError, as the command would exit 1 with its message.
    expect(out.error).toMatchObject({ isLongdoc: true, code: "job_invalid" });
  }, 120_000);

  it("a TypeScript consumer type-checks against the declarations, and a wrong use is an error", async () => {
    const consumer = path.join(app, "consumer.ts");
    await writeFile(
      consumer,
      `import { estimate, run, status, type JobEstimate, type RunSummary } from "longdoc";\n` +
        `const e: JobEstimate = await estimate("job.yaml", { limit: 2, only: ["*.md"], model: "qwen3-max", maxCost: 1 });\n` +
        `const total: number = e.totals.cost;\n` +
        `const s: RunSummary = await run("job.yaml", { workers: 1 });\n` +
        `const queued: number = (await status(s.jobId)).counts.queued;\n` +
        `// @ts-expect-error the estimate has no field 'nonsense'\n` +
        `e.nonsense;\n` +
        `export { total, queued };\n`,
    );
    await writeFile(
      path.join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "es2022", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, types: [], skipLibCheck: true, lib: ["es2022"] }, files: ["consumer.ts"] }),
    );
    const r = await sh(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", app, "--typeRoots", path.join(ROOT, "node_modules", "@types"), "--types", "node"], { cwd: app });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  }, 120_000);

  it.each((process.env.LONGDOC_TEST_NODES ?? "").split(",").filter(Boolean))("runs under the Node at %s", async (node) => {
    const v = await sh(node, [bin, "--version"], { cwd: app });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const e = await sh(node, [bin, "estimate", "job.yaml", "--json", "--limit", "1"], { cwd: app, env: { DASHSCOPE_API_KEY: "" } });
    expect(e.code, e.stderr).toBe(0);
    expect((JSON.parse(e.stdout) as { items: unknown[] }).items).toHaveLength(1);
  }, 120_000);

  it("on a Node older than the engines field, the command says in one line which version it needs", async () => {
    // /usr/bin/node is Node 20 on the machines this runs on; elsewhere the check is skipped.
    const old = await sh("/usr/bin/node", ["--version"], { cwd: app }).catch(() => null);
    const major = old?.code === 0 ? Number(/^v(\d+)/.exec(old.stdout)?.[1]) : NaN;
    if (!(major < 22)) return;
    const r = await sh("/usr/bin/node", [bin, "--version"], { cwd: app });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`longdoc needs Node ${pkg.engines.node.replace(">=", "")} or later; this is Node ${old!.stdout.trim().slice(1)}\n`);
  });
});
