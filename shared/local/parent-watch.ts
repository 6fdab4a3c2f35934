import { Worker } from "node:worker_threads";

/**
 * Ends this process (SIGKILL) within `intervalMs` of its parent's death, even while its main
 * thread is stuck in a long synchronous task (a huge document being parsed): the check runs on
 * a thread of its own. A process whose parent died is re-parented, so its ppid changes.
 */
export function dieWithParent(parentPid: number, intervalMs = 500): void {
  const code = `
    const { workerData } = require("node:worker_threads");
    setInterval(() => {
      if (process.ppid !== workerData.parentPid) process.kill(process.pid, "SIGKILL");
    }, workerData.intervalMs);
  `;
  new Worker(code, { eval: true, workerData: { parentPid, intervalMs } }).unref();
}
