import { spawn } from "node:child_process";

/**
 * `longdoc status <jobId> --watch ...` in a child process. `firstRead` resolves once the watcher
 * has shown the job (its first read of the run), and rejects if it exits before that.
 */
export function watchStatus(args: string[], opts: { jobId: string; cwd?: string; env?: NodeJS.ProcessEnv; bin?: string }) {
  const child = spawn(process.execPath, [opts.bin ?? "bin/longdoc.ts", "status", opts.jobId, "--watch", ...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (d) => (out.stdout += d));
  const shown = new Promise<void>((resolve) =>
    child.stderr.on("data", (d) => {
      out.stderr += d;
      if (out.stderr.includes(opts.jobId)) resolve();
    }),
  );
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const firstRead = Promise.race([shown, exited.then(() => Promise.reject(new Error(`status exited early: ${out.stderr}`)))]);
  return { out, firstRead, exited, kill: () => child.kill() };
}
