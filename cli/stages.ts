import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { LongdocError } from "../shared/errors.ts";

// Deployed stages as this folder knows them. `sst deploy` writes only the last deploy's outputs to
// .sst/outputs.json; sst.config.ts puts the stage's name in them, and each time longdoc reads
// that file it keeps a copy under .sst/stages/<stage>.json, so a second stage deployed from the
// same folder does not hide the first.

/** Written by `sst deploy` in the app's root: the object `infra/index.ts` `deploy()` returns. */
export const SST_OUTPUTS = path.join(".sst", "outputs.json");
export const STAGES_DIR = path.join(".sst", "stages");
/** SST's rule for stage names, and a safe file name. */
const STAGE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$/;

export interface StackOutputs {
  outputs: Record<string, unknown>;
  /** The file they came from (relative, for messages), or null when there is none. */
  from: string | null;
  stage: string | null;
}

function readJsonObject(file: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    throw new Error("not a JSON object");
  } catch (e) {
    throw new LongdocError("job_invalid", `${file}: cannot read the stack outputs (${(e as Error).message}); redeploy with 'npx sst deploy' or set LONGDOC_BUCKET and LONGDOC_QUEUE_URL`);
  }
}

/** The stages whose outputs this folder holds, sorted. */
export function knownStages(cwd = process.cwd()): string[] {
  const dir = path.join(cwd, STAGES_DIR);
  const names = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)) : [];
  const last = existsSync(path.join(cwd, SST_OUTPUTS)) ? readJsonObject(path.join(cwd, SST_OUTPUTS)).stage : undefined;
  if (typeof last === "string" && STAGE_NAME.test(last)) names.push(last);
  return [...new Set(names)].sort();
}

/**
 * The outputs of `stage`, or of the only stage deployed from here when none is named. Several
 * stages and no `--stage` is an error naming them; so is a stage with no outputs here.
 */
export function readStackOutputs(cwd = process.cwd(), stage?: string): StackOutputs {
  if (stage !== undefined && !STAGE_NAME.test(stage)) throw new LongdocError("usage", `--stage '${stage}' is not a stage name (letters, digits and '-')`);
  const lastFile = path.join(cwd, SST_OUTPUTS);
  const last = existsSync(lastFile) ? readJsonObject(lastFile) : undefined;
  const lastStage = typeof last?.stage === "string" && STAGE_NAME.test(last.stage) ? last.stage : null;
  if (last && lastStage) remember(cwd, lastStage, last);
  const stages = knownStages(cwd);
  if (stage === undefined) {
    if (stages.length > 1) {
      throw new LongdocError("usage", `${stages.length} stages were deployed from this folder (${stages.join(", ")}): say which with --stage ${stages.includes("prod") ? "prod" : stages[0]}`);
    }
    if (last) return { outputs: last, from: SST_OUTPUTS, stage: lastStage };
    if (stages.length === 1) return stageFile(cwd, stages[0]!);
    return { outputs: {}, from: null, stage: null };
  }
  if (last && lastStage === stage) return { outputs: last, from: SST_OUTPUTS, stage };
  if (stages.includes(stage)) return stageFile(cwd, stage);
  const known = stages.length ? `stages known here: ${stages.join(", ")}` : last ? `${SST_OUTPUTS} does not name its stage (deployed before stages were recorded): redeploy` : "nothing was deployed from this folder";
  throw new LongdocError("usage", `no outputs for stage '${stage}' (${known}); deploy it with 'npx sst deploy --stage ${stage}' in this folder, or set LONGDOC_BUCKET and LONGDOC_QUEUE_URL`);
}

function stageFile(cwd: string, stage: string): StackOutputs {
  const rel = path.join(STAGES_DIR, `${stage}.json`);
  return { outputs: readJsonObject(path.join(cwd, rel)), from: rel, stage };
}

/** Keeps the last deploy's outputs under its stage's name; a folder that cannot be written is no reason to fail a read. */
function remember(cwd: string, stage: string, outputs: Record<string, unknown>): void {
  const file = path.join(cwd, STAGES_DIR, `${stage}.json`);
  const text = JSON.stringify(outputs, null, 2) + "\n";
  try {
    if (existsSync(file) && readFileSync(file, "utf8") === text) return;
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  } catch {
    // read-only checkout: the stage is still read from .sst/outputs.json
  }
}
