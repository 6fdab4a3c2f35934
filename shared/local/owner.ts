import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { LongdocError } from "../errors.ts";

/** Who holds a local state: one live process at a time, as a deployed stack is one stack. */
export interface StateOwner {
  pid: number;
  command: string;
  since: string;
}

const ownerFile = (dir: string) => path.join(dir, "owner.json");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The live owner of a state, if any (a stale file left by a killed process is not an owner). */
export function stateOwner(dir: string): StateOwner | null {
  try {
    const owner = JSON.parse(readFileSync(ownerFile(dir), "utf8")) as StateOwner;
    return alive(owner.pid) ? owner : null;
  } catch {
    return null;
  }
}

/**
 * Takes the local state for this process, or refuses with the owner's pid and command: two
 * processes on one state would each read the emulator's files once and miss the other's writes.
 * A file left by a process that died (kill -9) is taken over.
 */
export async function lockState(dir: string, command: string): Promise<{ release(): void }> {
  await mkdir(dir, { recursive: true });
  const me: StateOwner = { pid: process.pid, command, since: new Date().toISOString() };
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(ownerFile(dir), JSON.stringify(me) + "\n", { flag: "wx" });
      return {
        release() {
          if (stateOwner(dir)?.pid === process.pid) rmSync(ownerFile(dir), { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const owner = stateOwner(dir);
      if (owner) {
        throw new LongdocError(
          "job_invalid",
          `the local state '${dir}' is in use by '${owner.command}' (pid ${owner.pid}, since ${owner.since}): wait for it to end, stop it (Ctrl-C), or pass another --state`,
        );
      }
      rmSync(ownerFile(dir), { force: true });
    }
  }
  throw new LongdocError("internal", `cannot take the local state '${dir}'`);
}
