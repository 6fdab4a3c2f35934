import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { LineCounter, parse, parseDocument } from "yaml";
import { formatProblem, JobFileError, parseJobText, type JobProblem } from "../shared/job/load.ts";
import { schemaProblem } from "../shared/job/output.ts";
import type { JobSpec } from "../shared/job/schema.ts";

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
 * Reads `<dir>/*.yaml` (not sub-folders, so `jobs/examples/` is left out) and refuses, before
 * anything is created, every job the deployment would start but that could never run:
 *
 * - each job with a `schedule:` or a `trigger:` must pass the checks `longdoc validate` makes of
 *   the spec itself (shared/job/load.ts: YAML, fields, types, the rules between fields), each
 *   problem as `file:line: field: message`. Its documents are not looked up: `s3:` sources are
 *   listed only when a run starts;
 * - its `name:` must equal its file name (the deployed submit finds a job by its file);
 * - its `output.schemaFile` must be a JSON Schema inside `dir`, which is all the submit function
 *   carries (`copyFiles: jobs`);
 * - its schedule must be one EventBridge Scheduler accepts (cron with six fields and one `?`,
 *   rate with a whole number and a unit);
 * - no two such jobs may share a component name once their names are pascal-cased
 *   (`q1-report` and `q-1-report` both give `ScheduleQ1Report`), naming both files.
 *
 * Every problem in every file is reported at once, one per line. Other job files (submitted by
 * hand with `longdoc submit`, which validates them then) are only read for their `s3:` buckets.
 */
export function readJobs(dir = "jobs"): JobWiring[] {
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".yaml"))
    .map((e) => e.name)
    .sort();
  const problems: string[] = [];
  const jobs = files.map((base) => {
    const file = path.join(dir, base);
    const text = readFileSync(file, "utf8");
    let doc: unknown;
    try {
      doc = parse(text);
    } catch (e) {
      problems.push(`${file}: not valid YAML: ${(e as Error).message.split("\n")[0]}`);
      return null;
    }
    const spec = asRecord(doc);
    const name = base.slice(0, -".yaml".length);
    const schedule = typeof spec.schedule === "string" ? spec.schedule : undefined;
    const trigger = typeof spec.trigger === "string" ? spec.trigger : undefined;
    if ("schedule" in spec || "trigger" in spec) {
      if (typeof spec.name === "string" && spec.name !== name) {
        problems.push(
          `${file}: name '${spec.name}' differs from the file name; deployed schedules and inbox/ uploads find a job by its file (jobs/<name>.yaml), so rename one to match`,
        );
      }
      problems.push(...checkDeployedJob(text, file, dir));
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
    const wiring: JobWiring = { name, file, s3Buckets, ...(schedule && { schedule }), ...(trigger && { trigger }) };
    return wiring;
  });
  const wired = jobs.filter((j): j is JobWiring => j !== null);
  problems.push(...componentNameClashes(wired.filter((j) => j.schedule !== undefined || j.trigger !== undefined)));
  if (problems.length > 0) throw new Error(problems.join("\n"));
  return wired;
}

/** The problems of one scheduled or upload job's spec, as `file:line: field: message` lines; none when it can run. */
export function checkDeployedJob(text: string, file: string, dir: string): string[] {
  let spec: JobSpec;
  try {
    spec = parseJobText(text, file);
  } catch (e) {
    if (e instanceof JobFileError) return e.problems.map(formatProblem);
    throw e;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const lineOf = (...keys: string[]) => {
    const node = doc.getIn(keys, true) as { range?: [number, number, number] } | undefined;
    return node?.range ? lines.linePos(node.range[0]).line : 1;
  };
  const problems: JobProblem[] = [];
  if (spec.schedule !== undefined) {
    const wrong = scheduleProblem(spec.schedule);
    if (wrong) problems.push({ file, line: lineOf("schedule"), field: "schedule", message: wrong });
  }
  if (spec.output.format === "json" && spec.output.schemaFile) {
    const wrong = schemaFileProblem(spec.output.schemaFile, file, dir);
    if (wrong) problems.push({ file, line: lineOf("output", "schemaFile"), field: "output.schemaFile", message: wrong });
  } else if (spec.output.format === "json" && spec.output.schema) {
    const wrong = schemaProblem(spec.output.schema);
    if (wrong) problems.push({ file, line: lineOf("output", "schema"), field: "output.schema", message: `not a usable JSON Schema: ${wrong}` });
  }
  return problems.map(formatProblem);
}

/**
 * What EventBridge Scheduler would refuse in a `cron(...)` or `rate(...)` expression (Scheduler
 * user guide, schedule types): cron has six fields (minutes hours day-of-month month day-of-week
 * year) and exactly one of day-of-month and day-of-week is `?`; rate is `rate(<n> <unit>)` with
 * a whole n of at least 1 and a unit of minute(s), hour(s) or day(s), singular for 1.
 */
export function scheduleProblem(expression: string): string | null {
  const cron = /^cron\((.*)\)$/.exec(expression);
  if (cron) {
    const fields = cron[1]!.trim().split(/\s+/);
    if (fields.length !== 6) {
      return `cron takes six fields (minutes hours day-of-month month day-of-week year), got ${fields.length}: '${cron[1]!.trim()}'; e.g. cron(0 6 3 * ? *) is 06:00 UTC on the 3rd of each month`;
    }
    if ((fields[2] === "?") === (fields[4] === "?")) {
      return `in cron, exactly one of day-of-month (3rd field, '${fields[2]}') and day-of-week (5th field, '${fields[4]}') must be '?'`;
    }
    return null;
  }
  const rate = /^rate\((.*)\)$/.exec(expression);
  if (rate) {
    const m = /^(\d+) (minute|minutes|hour|hours|day|days)$/.exec(rate[1]!.trim());
    if (!m || Number(m[1]) < 1) return `rate takes a whole number of at least 1 and a unit (minutes, hours or days), e.g. rate(1 day) or rate(6 hours); got '${rate[1]!.trim()}'`;
    const singular = !m[2]!.endsWith("s");
    if ((Number(m[1]) === 1) !== singular) return `rate(${m[1]} ${m[2]}): use '${Number(m[1]) === 1 ? m[2]!.replace(/s$/, "") : `${m[2]}s`}' (EventBridge takes the singular only for 1)`;
    return null;
  }
  return null;
}

/** Why a JSON output's schemaFile would not be found, or not compile, in the deployed submit function. */
function schemaFileProblem(schemaFile: string, jobFile: string, dir: string): string | null {
  const target = path.resolve(path.dirname(jobFile), schemaFile);
  const rel = path.relative(path.resolve(dir), target);
  if (rel.startsWith("..") || path.isAbsolute(rel)) {
    return `${schemaFile} is outside ${dir}/, and the deployed submit function carries only ${dir}/ (copy the schema into it, e.g. ${dir}/schemas/)`;
  }
  if (!existsSync(target)) return `${schemaFile} not found (looked for ${path.join(dir, rel)})`;
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(target, "utf8"));
  } catch (e) {
    return `cannot read ${schemaFile} as JSON (${(e as Error).message})`;
  }
  const wrong = schema !== null && typeof schema === "object" && !Array.isArray(schema) ? schemaProblem(schema as Record<string, unknown>) : "it is not a JSON object";
  return wrong ? `${schemaFile} is not a usable JSON Schema: ${wrong}` : null;
}

/**
 * Jobs whose names give the same pascal-cased component name (`Schedule<Name>`, `Inbox<Name>`):
 * SST would refuse the second component, or one would replace the other.
 */
export function componentNameClashes(jobs: JobWiring[]): string[] {
  const byComponent = new Map<string, JobWiring[]>();
  for (const j of jobs) byComponent.set(pascal(j.name), [...(byComponent.get(pascal(j.name)) ?? []), j]);
  return [...byComponent.entries()]
    .filter(([, same]) => same.length > 1)
    .map(
      ([component, same]) =>
        `${same.map((j) => j.file).join(" and ")}: job names ${same.map((j) => `'${j.name}'`).join(" and ")} give the same resource name ${component} (Schedule${component}, Inbox${component}); rename one`,
    );
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
