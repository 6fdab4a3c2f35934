import type { JobSpec } from "../job/schema.ts";
import type { Tolerance } from "./consensus.ts";

/** Model rounds per sample when the job does not set `limits.maxToolRounds`. */
export const DEFAULT_TOOL_ROUNDS = 4;

export const toolRounds = (spec: Pick<JobSpec, "limits">) => spec.limits.maxToolRounds ?? DEFAULT_TOOL_ROUNDS;

export const toleranceOf = (spec: Pick<JobSpec, "numericTolerance">): Tolerance => ({
  absolute: spec.numericTolerance?.absolute ?? 0,
  relative: spec.numericTolerance?.relative ?? 0,
});
