import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

/** The repository's root: the CLI runs from there, as a user runs it after cloning. */
export const ROOT = path.resolve(import.meta.dirname, "..", "..");

/**
 * Runs `longdoc <args>` in a child process (bin/longdoc.ts with this Node), with `env` over this
 * process's environment; resolves with the exit code and both streams, whatever the code.
 */
export async function longdoc(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 60_000, cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(ROOT, "bin", "longdoc.ts"), ...args], { cwd, timeout: timeoutMs, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
