import { createLog, type Log } from "../shared/log.ts";
import { deployment, loadSettings, type Settings } from "../shared/settings.ts";

type Env = Readonly<Record<string, string | undefined>>;

/**
 * What the CLI knows of the world it runs in, made once in bin/longdoc.ts: the environment
 * (only the CLI's own AWS and stack lookups read it) and the settings, read and checked on first
 * use so a bad variable is reported by the command that needs it.
 */
export interface Edge {
  env: Env;
  settings(): Readonly<Settings>;
}

export function createEdge(env: Env): Edge {
  let settings: Readonly<Settings> | undefined;
  return { env, settings: () => (settings ??= loadSettings(env, {}, { logLevel: "error" })) };
}

/** With --json, stdout carries only JSON (so `| jq` works); tables and notes go to stderr. */
export const human = (json: boolean | undefined): NodeJS.WriteStream => (json ? process.stderr : process.stdout);

/** What `retry` and `cancel` hand the local runtime for a job on a local state. */
export function localControl(jobId: string, flags: { state: string; out: string; workers?: number }, edge: Edge): { jobId: string; dataDir: string; outDir: string; workers: number; settings: Readonly<Settings>; log: Log } {
  const settings = edge.settings();
  return { jobId, dataDir: flags.state, outDir: flags.out, workers: flags.workers ?? deployment.local.workers, settings, log: createLog({ level: settings.logLevel }) };
}
