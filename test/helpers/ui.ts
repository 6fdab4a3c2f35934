import { spawn } from "node:child_process";
import { ROOT } from "./cli.ts";

/**
 * `longdoc ui --port 0 ...` in a child process, as a user starts it; resolves once it printed
 * the address it serves on.
 */
export async function startUiProcess(args: string[]): Promise<{ url: string; stop: () => Promise<number | null>; out: { stdout: string; stderr: string } }> {
  const child = spawn(process.execPath, ["bin/longdoc.ts", "ui", "--port", "0", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stderr.on("data", (d) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out.stdout += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out.stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`longdoc ui exited (${code}) before serving: ${out.stderr}`)));
  });
  return {
    url,
    out,
    stop: async () => {
      child.kill("SIGINT");
      return exited;
    },
  };
}
