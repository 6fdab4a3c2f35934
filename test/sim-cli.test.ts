import { spawn } from "node:child_process";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";

const script = `
import { Command } from "commander";
import { registerSim } from "./cli/commands/sim.ts";
const program = new Command().name("longdoc").exitOverride();
registerSim(program);
await program.parseAsync(JSON.parse(process.env.SIM_ARGS), { from: "user" });
`;

function run(args: string[]) {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("..", import.meta.url),
    env: { ...process.env, SIM_ARGS: JSON.stringify(["sim", ...args]) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed; stdout: ${stdout} stderr: ${stderr}`)), 20_000);
    child.stdout.on("data", () => {
      const m = /QWEN_BASE_URL=(\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => reject(new Error(`exited early; stdout: ${stdout} stderr: ${stderr}`)));
  });
  url.catch(() => {}); // awaited only by tests that need it
  return { child, url, exited, out: () => stdout, err: () => stderr };
}

describe("longdoc sim", () => {
  it("serves until SIGINT, with the key and faults from the flags", async () => {
    const p = run(["--port", "0", "--api-key", "sk-cli", "--rpm", "600", "--faults", "500:0,seed=3"]);
    try {
      const baseURL = await p.url;
      expect(baseURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/compatible-mode\/v1$/);
      const client = new OpenAI({ apiKey: "sk-cli", baseURL, maxRetries: 0 });
      const r = await client.chat.completions.create({ model: "qwen3-max", messages: [{ role: "user", content: "hi" }] });
      expect(r.choices[0]!.message.content).toContain("longdoc-sim:");
      await expect(new OpenAI({ apiKey: "wrong", baseURL, maxRetries: 0 }).chat.completions.create({ model: "qwen3-max", messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({ status: 401 });
      p.child.kill("SIGINT");
      expect(await p.exited).toBe(0);
      expect(p.out()).toContain("stopping after 2 request(s)");
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("rejects a bad fault spec", async () => {
    const p = run(["--faults", "teapot:0.5"]);
    const code = await p.exited;
    expect(code).not.toBe(0);
    expect(p.err()).toMatch(/unknown fault kind 'teapot'/);
  });
});
