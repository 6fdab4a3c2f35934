import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";

/** What the deployment needs to know about one job file; `longdoc validate` checks the rest. */
export interface JobWiring {
  /** The file's name without `.yaml`: what the submit handler resolves (`jobs/<name>.yaml`). */
  name: string;
  /** The file, relative to the current directory (the app root when SST runs). */
  file: string;
  /** `schedule:` as written, e.g. `cron(0 6 ? * MON *)`. */
  schedule?: string;
  /** `trigger:` as written; `upload` wires `inbox/<name>/` to submit. */
  trigger?: string;
  /** Buckets named by `documents[].s3` (`s3://bucket/prefix`), which the functions must read. */
  s3Buckets: string[];
}

const asRecord = (v: unknown): Record<string, unknown> => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/**
 * Reads `<dir>/*.yaml` (not sub-folders, so `jobs/examples/` is left out). Only parse errors
 * and a `name:` that differs from the file name of a scheduled or upload job are refused: the
 * deployed submit finds such a job by its file name, so a mismatch could never run.
 */
export function readJobs(dir = "jobs"): JobWiring[] {
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".yaml"))
    .map((e) => e.name)
    .sort();
  return files.map((base) => {
    const file = path.join(dir, base);
    let doc: unknown;
    try {
      doc = parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new Error(`${file}: not valid YAML: ${(e as Error).message}`, { cause: e });
    }
    const spec = asRecord(doc);
    const name = base.slice(0, -".yaml".length);
    const schedule = typeof spec.schedule === "string" ? spec.schedule : undefined;
    const trigger = typeof spec.trigger === "string" ? spec.trigger : undefined;
    if ((schedule || trigger) && typeof spec.name === "string" && spec.name !== name) {
      throw new Error(
        `${file}: name '${spec.name}' differs from the file name; deployed schedules and inbox/ uploads find a job by its file (jobs/<name>.yaml), so rename one to match`,
      );
    }
    const documents = Array.isArray(spec.documents) ? spec.documents : [];
    const s3Buckets = [
      ...new Set(
        documents.flatMap((d) => {
          const uri = asRecord(d).s3;
          const m = typeof uri === "string" ? /^s3:\/\/([^/]+)/.exec(uri) : null;
          return m ? [m[1]!] : [];
        }),
      ),
    ];
    return { name, file, s3Buckets, ...(schedule && { schedule }), ...(trigger && { trigger }) };
  });
}

/** Read access to the buckets the job files name, for the functions that list and read them. */
export function sourceReadPermissions(jobs: JobWiring[]): { actions: string[]; resources: string[] }[] {
  const buckets = [...new Set(jobs.flatMap((j) => j.s3Buckets))].sort();
  if (buckets.length === 0) return [];
  return [
    {
      actions: ["s3:GetObject", "s3:ListBucket"],
      resources: buckets.flatMap((b) => [`arn:aws:s3:::${b}`, `arn:aws:s3:::${b}/*`]),
    },
  ];
}

/** `annual-report-risks` → `AnnualReportRisks`: component names for per-job resources. */
export function pascal(name: string): string {
  return name
    .split(/[^a-zA-Z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join("");
}
