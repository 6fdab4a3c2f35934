// The code tool's sandbox: real QuickJS (WebAssembly) running scripts a model could write, with
// its limits reached for real.
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { INSTALLED_PACKAGES } from "../shared/bundle.ts";
import { CODE_TOOL, CODE_TOOL_NAME, DEFAULT_CODE_LIMITS, runCode, toolMessage } from "../shared/tools/code.ts";

const tight = { ...DEFAULT_CODE_LIMITS, timeoutMs: 400, memoryBytes: 16 * 1024 * 1024, maxOutputChars: 300 };

describe("the code tool's sandbox", () => {
  it("computes an NPV exactly and returns both the printed lines and the final value", async () => {
    const r = await runCode(
      `const rate = 0.08, flows = [-1000, 300, 400, 500];
       const npv = flows.reduce((s, c, t) => s + c / (1 + rate) ** t, 0);
       console.log("NPV at 8%:", npv.toFixed(2));
       Math.round(npv * 100) / 100`,
    );
    expect(r).toMatchObject({ ok: true, stdout: "NPV at 8%: 17.63", value: "17.63", error: null, truncated: false });
  });

  it("computes growth rates and returns objects as JSON", async () => {
    const r = await runCode(`const rev = {2022: 43004, 2023: 45754, 2024: 47061};
      ({ growth2024: +((rev[2024] / rev[2023] - 1) * 100).toFixed(2), cagr: +(((rev[2024] / rev[2022]) ** (1 / 2) - 1) * 100).toFixed(2) })`);
    expect(r.ok).toBe(true);
    expect(JSON.parse(r.value!)).toEqual({ growth2024: 2.86, cagr: 4.61 });
  });

  it("stops an endless loop at its time limit and says so", async () => {
    const r = await runCode("let n = 0; while (true) { n++ }", tight);
    expect(r.ok).toBe(false);
    expect(r.error).toBe("stopped: the script ran past its 400 ms time limit");
    expect(r.durationMs).toBeGreaterThanOrEqual(400);
    expect(r.durationMs).toBeLessThan(2_000);
  });

  it("stops memory bombs (arrays, and strings, which QuickJS allocates outside its own heap limit)", async () => {
    // A generous time limit, so that memory is what stops them even on a busy machine.
    const roomy = { ...tight, timeoutMs: 5_000 };
    const arrays = await runCode("const a = []; while (true) a.push(new Array(1e5).fill(1));", roomy);
    expect(arrays.ok).toBe(false);
    expect(arrays.error).toMatch(/^stopped: the script passed its 16 MiB memory limit/);
    const strings = await runCode(`const a = []; while (true) a.push("x".repeat(1 << 20));`, roomy);
    expect(strings.ok).toBe(false);
    expect(strings.error).toMatch(/^stopped: the script passed its 16 MiB memory limit/);
    expect(strings.durationMs).toBeLessThan(5_000);
  });

  it("has no require, process, fetch, timers, modules or filesystem", async () => {
    const probe = await runCode(
      `["require", "process", "fetch", "XMLHttpRequest", "setTimeout", "std", "os", "Deno", "Bun", "WebAssembly"].map((n) => n + ":" + typeof globalThis[n]).join(",")`,
    );
    expect(JSON.parse(probe.value!)).toBe(
      "require:undefined,process:undefined,fetch:undefined,XMLHttpRequest:undefined,setTimeout:undefined,std:undefined,os:undefined,Deno:undefined,Bun:undefined,WebAssembly:undefined",
    );
    expect((await runCode(`require("fs").readFileSync("/etc/passwd", "utf8")`)).error).toBe("ReferenceError: 'require' is not defined");
    expect((await runCode(`process.env`)).error).toBe("ReferenceError: 'process' is not defined");
    expect((await runCode(`fetch("http://127.0.0.1/")`)).error).toBe("ReferenceError: 'fetch' is not defined");
    expect((await runCode(`import("fs")`)).error).toMatch(/could not load module 'fs'/);
    expect((await runCode(`import fs from "node:fs"; 1`)).error).toMatch(/could not load module/);
    // The constructor escape that works against vm contexts reaches only the sandbox's own Function.
    const escape = await runCode(`(function(){}).constructor("return typeof process + typeof require")()`);
    expect(escape.value).toBe(JSON.stringify("undefinedundefined"));
  });

  it("cuts output at its limit and reports a thrown error as the model will read it", async () => {
    const spam = await runCode(`for (let i = 0; i < 1000; i++) console.log("line " + i); "done"`, tight);
    expect(spam.ok).toBe(true);
    expect(spam.truncated).toBe(true);
    expect(spam.stdout.length).toBeLessThanOrEqual(301);
    expect(toolMessage(spam)).toContain("(output cut at the sandbox's output limit)");
    const thrown = await runCode(`throw new RangeError("bad period")`);
    expect(toolMessage(thrown)).toBe("error: RangeError: bad period");
    const deep = await runCode("function f(n) { return f(n + 1) + 1 } f(0)", tight);
    expect(deep.ok).toBe(false);
    expect(deep.error).toMatch(/stack overflow|call stack size/);
  });

  it("a run after a stopped one starts clean", async () => {
    await runCode("globalThis.leak = 1; while (true) {}", tight);
    expect((await runCode("typeof leak")).value).toBe(JSON.stringify("undefined"));
  });

  it("offers one function whose name the API accepts (not `search`)", () => {
    expect(CODE_TOOL.function.name).toBe(CODE_TOOL_NAME);
    expect(CODE_TOOL_NAME).not.toBe("search");
    expect(CODE_TOOL.function.parameters.required).toEqual(["code"]);
  });

  it("works inside a Lambda-style bundle, with quickjs-emscripten installed beside it (it loads its .wasm from its package)", async () => {
    expect(INSTALLED_PACKAGES).toContain("quickjs-emscripten");
    const dir = path.resolve("node_modules/.cache/longdoc-sandbox-bundle");
    await mkdir(dir, { recursive: true });
    const entry = path.join(dir, "entry.ts");
    await writeFile(entry, `import { runCode } from ${JSON.stringify(path.resolve("shared/tools/code.ts"))};\nconsole.log(JSON.stringify(await runCode("[1, 2, 3].reduce((a, b) => a + b)")));\n`);
    await build({ entryPoints: [entry], bundle: true, platform: "node", format: "esm", target: "node24", outfile: path.join(dir, "out.mjs"), external: INSTALLED_PACKAGES, logLevel: "silent" });
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(dir, "out.mjs")], { timeout: 30_000 });
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, value: "6" });
  });
});
