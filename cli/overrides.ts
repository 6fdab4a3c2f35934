import { InvalidArgumentError, type Command } from "commander";
import type { JobOverrides, RecordedOverrides } from "../shared/submit/select.ts";

/** `--limit`, `--only`, `--model` and `--max-cost`, shared by `run` and `estimate`. */
export function addOverrideOptions(command: Command): Command {
  return command
    .option("--limit <n>", "only the first N items (after --only)", (v: string) => {
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`must be a positive whole number, got '${v}'`);
      return Number(v);
    })
    .option("--only <glob>", "only the items whose id or document (path or file name) matches; repeat for more", (v: string, prev: string[] = []) => [...prev, v])
    .option("--model <name>", "a catalog model instead of the job's `model`, for this run")
    .option("--max-cost <amount>", "a cost cap in the endpoint's currency instead of the job's limits.maxCost, for this run", (v: string) => {
      const n = Number(v);
      if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`must be a positive number, got '${v}'`);
      return n;
    });
}

export const overridesOf = (flags: JobOverrides): JobOverrides => ({ limit: flags.limit, only: flags.only, model: flags.model, maxCost: flags.maxCost });

/** One line on stderr saying what this run changed of the job file, or null when nothing. */
export function describeOverrides(o: RecordedOverrides | undefined): string | null {
  if (!o) return null;
  const parts = [
    o.model && `model ${o.model.run} (the job file says ${o.model.job})`,
    o.maxCost && `cost cap ${o.maxCost.run} (the job file says ${o.maxCost.job ?? "none"})`,
    o.only && `only items matching ${o.only.join(", ")}`,
    o.limit !== undefined && `at most ${o.limit} item(s)`,
  ].filter(Boolean);
  return parts.length ? `this run overrides the job file: ${parts.join("; ")}` : null;
}
