import { readFileSync, readdirSync, readlinkSync } from "node:fs";

/**
 * Which of `pids` owns the loopback TCP connection whose local port is `port` (Linux /proc):
 * the socket's inode from /proc/net/tcp{,6}, then the process holding that inode among its fds.
 * Null when none does (the connection closed meanwhile) or /proc is not there.
 */
export function pidOwningPort(port: number, pids: number[]): number | null {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || parseInt(local.split(":")[1]!, 16) !== port) continue;
      if (cols[9] && cols[9] !== "0") inodes.add(cols[9]);
    }
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return pid;
      } catch {
        // The fd closed while we looked.
      }
    }
  }
  return null;
}
