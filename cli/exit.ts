import { InvalidArgumentError } from "commander";
import { LongdocError } from "../shared/errors.ts";
import { summary, type Manifest } from "../shared/run/manifest.ts";

/** The contract's exit codes. */
export const EXIT = { ok: 0, input: 1, usage: 2, itemsFailed: 3 } as const;

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

/** A commander option parser: a bad value is a usage error (exit 2), reported by commander. */
export function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive whole number, got '${value}'`);
    return n;
  };
}

/** A command that ends without running anything: its message, the summary with --json, exit 0. */
export function endUnchanged(message: string, m: Manifest, json?: boolean): void {
  (json ? process.stderr : process.stdout).write(message + "\n");
  if (json) process.stdout.write(JSON.stringify(summary(m)) + "\n");
  process.exitCode = EXIT.ok;
}
