import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";
import { InvalidArgumentError } from "commander";
import { LongdocError } from "../shared/errors.ts";
import { summary, type Manifest } from "../shared/run/manifest.ts";

/** The contract's exit codes. */
export const EXIT = { ok: 0, input: 1, usage: 2, itemsFailed: 3, interrupted: 130 } as const;

/** The signals that stop a local run and keep its state for a resume. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** A shell's code for a process ended by a signal (128 + its number): 130 for SIGINT, 143 for SIGTERM. */
export const signalExitCode = (signal: NodeJS.Signals): number => (signal === "SIGTERM" ? 143 : EXIT.interrupted);

/**
 * SIGINT (Ctrl-C) and SIGTERM (timeout, docker stop, CI) alike for a command that drives local
 * workers: the first aborts `signal`, so the workers stop after the work in hand and answers
 * already streamed are saved; a second stops at once, printing `hint()`, with the exit code of
 * the first. `dispose` removes the handlers.
 */
export function stopOnSignals(hint: () => string): { signal: AbortSignal; first: () => NodeJS.Signals | undefined; dispose: () => void } {
  const interrupt = new AbortController();
  let first: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = signal;
      process.stderr.write(`\n${signal}: stopping the workers after the work in hand (again to stop at once)\n`);
      interrupt.abort();
      return;
    }
    process.stderr.write(`\n${signal}: stopped at once; answers already saved are kept and not paid for again.\n${hint()}\n`);
    process.exit(signalExitCode(first));
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  return { signal: interrupt.signal, first: () => first, dispose: () => STOP_SIGNALS.forEach((s) => process.off(s, onSignal)) };
}

/** Prints a failure the user can act on (no stack traces for known errors) and sets the exit code. */
export function fail(e: unknown): void {
  if (LongdocError.is(e)) {
    process.stderr.write(`longdoc: ${e.message}\n`);
    process.exitCode = e.code === "usage" ? EXIT.usage : EXIT.input;
    return;
  }
  process.stderr.write(`longdoc: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = EXIT.input;
}

/**
 * A whole number written in plain decimal digits, else NaN: Number() alone would take '0x10',
 * '1e1', '0b11' and ' 4 ', which no one means as a count.
 */
export const plainInt = (value: string | number): number => (typeof value === "number" ? value : /^[0-9]{1,15}$/.test(value) ? Number(value) : NaN);

/** A commander option parser: a bad value is a usage error (exit 2), reported by commander. */
export function positiveInt(name: string) {
  return (value: string): number => {
    const n = plainInt(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive whole number, got '${value}'`);
    return n;
  };
}

/** Local workers a run may start: each holds a model stream and a document in memory. */
export const MAX_LOCAL_WORKERS = 64;

/** A usage error (exit 2), printed as one line by `fail`. */
export const usageError = (message: string) => new LongdocError("usage", message);

/** `--workers`: undefined when not given, else a whole number from 1 to MAX_LOCAL_WORKERS. */
export function parseWorkers(value: string | number | undefined, name = "--workers"): number | undefined {
  if (value === undefined) return undefined;
  const n = plainInt(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOCAL_WORKERS) {
    throw usageError(`${name} must be a whole number from 1 to ${MAX_LOCAL_WORKERS}, got '${value}'`);
  }
  return n;
}

/**
 * Checks that an option naming a folder (`--out`, `--state`) is a writable folder or can be
 * created: checked before a run submits anything, so a bad path never costs a model call.
 */
/** `--workers` as a commander option parser: a bad value is a usage error with commander's one line. */
export function workersArg(value: string): number {
  const n = plainInt(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOCAL_WORKERS) throw new InvalidArgumentError(`--workers must be a whole number from 1 to ${MAX_LOCAL_WORKERS}, got '${value}'`);
  return n;
}

export async function checkFolderOption(name: string, dir: string): Promise<void> {
  const abs = path.resolve(dir);
  const s = await stat(abs).catch(() => undefined);
  if (s) {
    if (!s.isDirectory()) throw usageError(`${name} ${dir}: is a file, not a folder`);
    if (!(await access(abs, constants.W_OK).then(() => true, () => false))) throw usageError(`${name} ${dir}: the folder is not writable`);
    return;
  }
  // Not there: the nearest existing folder above it must be a writable folder.
  for (let up = path.dirname(abs); ; up = path.dirname(up)) {
    const u = await stat(up).catch(() => undefined);
    if (u) {
      if (!u.isDirectory()) throw usageError(`${name} ${dir}: cannot be created (${up} is a file, not a folder)`);
      if (!(await access(up, constants.W_OK).then(() => true, () => false))) throw usageError(`${name} ${dir}: cannot be created (${up} is not writable)`);
      return;
    }
    if (path.dirname(up) === up) throw usageError(`${name} ${dir}: cannot be created`);
  }
}

/** A command that ends without running anything: its message, the summary with --json, exit 0. */
export function endUnchanged(message: string, m: Manifest, json?: boolean): void {
  (json ? process.stderr : process.stdout).write(message + "\n");
  if (json) process.stdout.write(JSON.stringify(summary(m)) + "\n");
  process.exitCode = EXIT.ok;
}
