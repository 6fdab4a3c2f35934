import { readFile } from "node:fs/promises";

/** Resident memory of a process in MB from Linux's /proc; null where /proc is not there or the process is gone. */
export async function residentMb(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * The V8 heap limit for a worker process with `memoryMb` in all, as a Lambda has: the rest is
 * left for buffers, the code and the runtime.
 */
export const heapLimitMb = (memoryMb: number) => Math.max(64, Math.floor(memoryMb * 0.75));
