// The programmatic API, `import { run, estimate, ... } from "longdoc"`: each function does what
// its command does and resolves with what that command prints with --json. Failures reject with
// a LongdocError (its `code` is the manifest's error kind, or "usage"); nothing is written to
// stdout or stderr, and the environment is read only from `env` (default: process.env).
import { LongdocError } from "../shared/errors.ts";
import { formatProblem, JobFileError } from "../shared/job/load.ts";
import type { Progress } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { summary, type Manifest } from "../shared/run/manifest.ts";
import { cancelJob, retryJob } from "../shared/run/control.ts";
import { readProgress, withOpenAIBatch, type RunProgress } from "../shared/run/progress.ts";
import { ObjectStore } from "../shared/run/store.ts";
import type { OpenAIBatchObject } from "../shared/run/openai-batch.ts";
import { deployment, loadSettings, type Settings } from "../shared/settings.ts";
import type { JobOverrides } from "../shared/submit/select.ts";
import { overridesOf } from "./overrides.ts";
import { estimateLoaded } from "../shared/submit/estimate-loaded.ts";
import type { JobEstimate } from "../shared/submit/estimate.ts";
import { checkJob } from "./preflight.ts";
import { deployedStoreReader, localStateReader, type StoreReader } from "./readers.ts";
import { writeBatchOutput, downloadRun } from "./results.ts";
import { writeCsvOutput } from "./results-csv.ts";
import { readStackCoordinates, stackClients, stackCoordinator, submitToDeployed } from "./stack.ts";

/** The local runtime (emulators, worker fleet, simulator): loaded by the calls that run a job, not by validate or estimate. */
const localRuntime = () => import("../shared/local/run.ts");

export { LongdocError } from "../shared/errors.ts";
export type { ErrorCode } from "../shared/errors.ts";
export type { JobEstimate, ItemEstimate } from "../shared/submit/estimate.ts";
export type { RunProgress } from "../shared/run/progress.ts";
export type { OpenAIBatchObject } from "../shared/run/openai-batch.ts";
export type { Manifest, ManifestItem } from "../shared/run/manifest.ts";
export type { JobOverrides } from "../shared/submit/select.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** The run summary: the manifest without its items (what `run --json`, `retry --json` and `cancel --json` print). */
export type RunSummary = Omit<Manifest, "items">;

interface EnvOption {
  /** Where DASHSCOPE_API_KEY, QWEN_BASE_URL, AWS_* and LONGDOC_* are read (default: process.env). */
  env?: Env;
}

interface LocalStateOptions extends EnvOption {
  /** The emulator state of local runs (default `.longdoc/state`). */
  state?: string;
  /** Runs are mirrored to `<out>/<jobId>/` (default `out`). */
  out?: string;
}

interface DeployedOptions {
  /** Act on the deployed stack instead of the local state. */
  deployed?: boolean;
  /** The deployed stage whose outputs to use (default: the only one known). */
  stage?: string;
}

const settingsOf = (o: EnvOption): Settings => loadSettings(o.env ?? process.env, {}, { logLevel: "error" });
const LOCAL_STATE = ".longdoc/state";

export interface EstimateOptions extends EnvOption, JobOverrides {
  allowOutside?: boolean;
}

/** `longdoc estimate <job> --json`: tokens, tier and cost per item, without calling the model. */
export async function estimate(jobFile: string, o: EstimateOptions = {}): Promise<JobEstimate> {
  const settings = settingsOf(o);
  const loaded = await checkJob(jobFile, settings.catalog, { allowOutside: o.allowOutside }, overridesOf(o));
  return estimateLoaded(loaded, { allowOutside: o.allowOutside });
}

export interface ValidateReport {
  ok: boolean;
  /** `warnings`: batch lines that will fail alone when run (a field Model Studio cannot honour). */
  files: { file: string; ok: boolean; job?: string; model?: string; requests?: number; sources?: number; problems: string[]; warnings?: string[] }[];
}

/** `longdoc validate <files...> --json`: every problem of every file, as `file:line: field: message`. */
export async function validate(files: string | string[], o: EnvOption & { allowOutside?: boolean } = {}): Promise<ValidateReport> {
  const catalog = settingsOf(o).catalog;
  const out: ValidateReport["files"] = [];
  for (const file of Array.isArray(files) ? files : [files]) {
    try {
      const { spec, batch } = await checkJob(file, catalog, { allowOutside: o.allowOutside });
      const warnings = (batch?.requests ?? []).filter((r) => r.refused).map((r) => `${file}:${r.line}: ${r.refused!.field}: ${r.refused!.message}`);
      out.push({ file, ok: true, job: spec.name, model: spec.model, ...(batch ? { requests: batch.requests.length } : { sources: spec.documents.length }), problems: [], ...(warnings.length && { warnings }) });
    } catch (e) {
      if (e instanceof JobFileError) out.push({ file, ok: false, problems: e.problems.map(formatProblem) });
      else if (LongdocError.is(e) && e.code !== "usage") out.push({ file, ok: false, problems: [e.message] });
      else throw e;
    }
  }
  return { ok: out.every((f) => f.ok), files: out };
}

export interface RunOptions extends LocalStateOptions, JobOverrides {
  /** Concurrent local worker processes (default: the job's limits.concurrency, at most 4). */
  workers?: number;
  allowOutside?: boolean;
  /** Start a new job even if this job file's last job on this state is unfinished (default: resume it). */
  new?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

/** `longdoc run <job> --json`: a local run end to end; resolves with the run summary whatever the items' outcome. */
export async function run(jobFile: string, o: RunOptions = {}): Promise<RunSummary> {
  const settings = settingsOf(o);
  await checkJob(jobFile, settings.catalog, { allowOutside: o.allowOutside }, overridesOf(o));
  const { manifest } = await (await localRuntime()).runLocalJob({
    jobFile,
    overrides: overridesOf(o),
    fresh: o.new,
    signal: o.signal,
    outDir: o.out ?? "out",
    workers: o.workers,
    settings,
    allowOutside: o.allowOutside,
    dataDir: o.state ?? LOCAL_STATE,
    log: silentLog,
    onProgress: o.onProgress,
  });
  return summary(manifest);
}

export interface SubmitReport {
  jobId: string;
  job: string;
  model: string;
  bucket: string;
  queueUrl: string;
  items: number;
  uploaded: number;
  listed: number;
}

/** `longdoc submit <job> --json`: submits to the deployed stack. */
export async function submit(jobFile: string, o: EnvOption & { stage?: string } = {}): Promise<SubmitReport> {
  const env = o.env ?? process.env;
  const { job, coords, uploaded, listed } = await submitToDeployed(jobFile, settingsOf(o), env, process.cwd(), o.stage);
  return { jobId: job.jobId, job: job.name, model: job.model, bucket: coords.bucket, queueUrl: coords.queueUrl, items: job.items.length, uploaded, listed };
}

function readerFor(o: LocalStateOptions & DeployedOptions): StoreReader {
  return o.deployed ? deployedStoreReader(o.env ?? process.env, process.cwd(), o.stage) : localStateReader(o.state ?? LOCAL_STATE);
}

/** `longdoc status <jobId> --json`: counts by status, tokens, cost and ETA. */
export async function status(jobId: string, o: LocalStateOptions & DeployedOptions = {}): Promise<RunProgress & { openaiBatch?: OpenAIBatchObject }> {
  const reader = readerFor(o);
  try {
    return await reader.read(async (store) => withOpenAIBatch(store, await readProgress(store, jobId)));
  } finally {
    await reader.close();
  }
}

export type ResultsReport =
  | { jobId: string; format: "files"; dir: string; files: number; status: RunProgress["status"] }
  | { jobId: string; format: "jsonl"; file: string; errorFile: string | null; succeeded: number; failed: number; pending: string[] }
  | { jobId: string; format: "csv"; file: string; rows: number; columns: string[]; pending: string[] };

/** `longdoc results <jobId>`: the run's files, or an OpenAI Batch output file (`jsonl`), or a CSV table, under `<out>/<jobId>/`. */
export async function results(jobId: string, o: LocalStateOptions & DeployedOptions & { format?: "jsonl" | "csv" } = {}): Promise<ResultsReport> {
  const out = o.out ?? "out";
  const reader = readerFor(o);
  try {
    if (o.format === "csv") {
      const r = await reader.read((store) => writeCsvOutput(store, jobId, out));
      return { jobId, format: "csv", file: r.file, rows: r.rows.length, columns: r.header, pending: r.pending };
    }
    if (o.format === "jsonl") {
      const r = await reader.read((store) => writeBatchOutput(store, jobId, out));
      return { jobId, format: "jsonl", file: r.file, errorFile: r.errorFile, succeeded: r.lines.length, failed: r.errors.length, pending: r.pending };
    }
    const r = await reader.read(async (store) => ({ ...(await downloadRun(store, jobId, out)), progress: await readProgress(store, jobId) }));
    return { jobId, format: "files", dir: r.dir, files: r.files, status: r.progress.status };
  } finally {
    await reader.close();
  }
}

const localControl = (jobId: string, o: LocalStateOptions & { workers?: number }) => {
  const settings = settingsOf(o);
  return { jobId, dataDir: o.state ?? LOCAL_STATE, outDir: o.out ?? "out", workers: o.workers ?? deployment.local.workers, settings, log: silentLog };
};

/** `longdoc cancel <jobId> --json`: queued items end skipped; resolves with the run summary (locally), or the stack's cancel outcome. */
export async function cancel(jobId: string, o: LocalStateOptions & DeployedOptions = {}): Promise<RunSummary | { jobId: string; state: "cancelling"; pending: number; alreadyCancelled: boolean }> {
  if (!o.deployed) return summary((await (await localRuntime()).cancelLocalJob(localControl(jobId, o))).manifest);
  const coords = readStackCoordinates(o.env ?? process.env, process.cwd(), o.stage);
  const { s3, sqs } = stackClients(coords, o.env ?? process.env);
  sqs.destroy();
  try {
    const c = await cancelJob({ store: new ObjectStore(s3, coords.bucket) }, jobId);
    return c.state === "finished" ? summary(c.manifest) : { jobId, state: "cancelling", pending: c.pending.length, alreadyCancelled: c.alreadyCancelled };
  } finally {
    s3.destroy();
  }
}

/** `longdoc retry <jobId> --json`: re-runs the failed and skipped items (locally to the end; deployed, re-queued for the stack's workers). */
export async function retry(jobId: string, o: LocalStateOptions & DeployedOptions & { workers?: number; maxOutputTokens?: number } = {}): Promise<RunSummary> {
  if (!o.deployed) return summary((await (await localRuntime()).retryLocalJob({ ...localControl(jobId, o), maxOutputTokens: o.maxOutputTokens })).manifest);
  const env = o.env ?? process.env;
  const coords = readStackCoordinates(env, process.cwd(), o.stage);
  const { s3, sqs } = stackClients(coords, env);
  const { coord, close } = stackCoordinator(coords);
  try {
    const out = await retryJob({ store: new ObjectStore(s3, coords.bucket), sqs, queueUrl: coords.queueUrl, coord }, jobId, { maxOutputTokens: o.maxOutputTokens });
    return summary(out.manifest);
  } finally {
    s3.destroy();
    sqs.destroy();
    close();
  }
}
