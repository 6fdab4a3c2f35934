import { loadSettings, type Settings } from "../shared/settings.ts";

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
