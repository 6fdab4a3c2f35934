/**
 * `longdoc schema`: the job file's JSON Schema, generated from the zod schema the loader checks
 * jobs with (shared/job/schema.ts), so the two cannot drift. It is committed as
 * jobs/job.schema.json for editors: a job file whose first line is
 * `# yaml-language-server: $schema=<path to jobs/job.schema.json>` gets completion, hover help and
 * checks as you type (VS Code's YAML extension and other yaml-language-server clients).
 *
 * It describes one job as it is written (defaults optional, shown as `default`). The rules
 * between fields (`questions` or `prompt`, one of `schema`/`schemaFile`, JSON output with
 * thinking off...) are beyond JSON Schema: `longdoc validate` checks those.
 */
import type { Command } from "commander";
import { z } from "zod";
import { jobSpecSchema } from "../../shared/job/schema.ts";

/** Editor hover text for the top-level fields; docs/job-file.md's field reference is generated from it and the schema. */
export const FIELD_HELP: Readonly<Record<string, string>> = {
  name: "The job's name: lowercase letters, digits and '-'. Job ids start with it; a deployed schedule or upload finds the job by it (jobs/<name>.yaml, inbox/<name>/).",
  description: "A line about the job, for people.",
  documents: "What to read, each whole: `path:` files or globs relative to the job file (local runs and `longdoc submit`), or `s3: s3://bucket/prefix/` (deployed runs).",
  system: "The system prompt.",
  questions: "Questions asked of each item, each with an `id` (answers are filed under it) and `ask`. Give `questions` or `prompt`, not both.",
  prompt: "One instruction asked of each item. Give `questions` or `prompt`, not both.",
  model: "The model, from shared/model/models.json (`longdoc models` lists them).",
  fallbackModel: "A catalog model with a larger input (e.g. qwen3.7-max or qwen-flash, 1M context): items whose prompt does not fit `model` run on it instead of failing, priced at its rates; the result, manifest and estimate name it.",
  thinking: "Thinking mode: `enabled`, and an optional `budget` of thinking tokens (at most 81920). The API refuses JSON output with thinking on.",
  maxOutputTokens: "The answer's cap in tokens; the prompt plus this and the thinking budget must fit the model's context.",
  output: "`format: text`, or `format: json` with exactly one of `schema` (inline JSON Schema) or `schemaFile` (a path relative to the job file, to a JSON file inside the job file's folder or the repository unless --allow-outside) that every answer must match.",
  packing: "`per-document`: one call per document; `all-documents`: one call over all of them; `packed`: small documents share calls, each answered in its own section.",
  truncate: "`middle` cuts the middle of the largest document when a call would not fit, leaving a marker; `none` fails the item with input_too_long.",
  calls: "`per-question` asks each question in its own call over the same document prefix, so later calls read it from the context cache.",
  cache: "`explicit` marks the document prefix with cache_control (writes at 125%, hits at 10% of the input price).",
  limits: "`concurrency`, `rpm`, `tpm` caps inside the job; a cost cap, `maxCost` (the endpoint's currency) or `maxCostUsd`, held before every call; `maxDocumentBytes`; `maxToolRounds` (with tools, default 4).",
  samples: "k calls per item (1 to 8) over the same document prefix; JSON answers are merged by field-wise majority with an agreement score, a text answer is the one most samples share; every sample is kept. Each extra sample reads the document from the cache.",
  minAgreement: "Needs samples ≥ 2: an item whose agreement (0..1) is below this ends failed with kind low_agreement, its samples kept.",
  numericTolerance: "Needs samples ≥ 2: sampled numbers agree when within `absolute` or within `relative` (a fraction) of the larger one.",
  judge: "Text output with samples ≥ 2: one more call over the cached prefix reads the sampled answers and picks one, saying why (kept in result.json).",
  tools: "`[code]` offers the model a sandboxed JavaScript function (no I/O; time, memory and output limits) for exact arithmetic; calls and outputs go into the trace.",
  toolChoice: "`auto` (default): the model decides; `code`: its first round must call the code tool (refused with thinking on, as the API refuses it).",
  citations: "`verify`: the prompt asks for a citation behind each figure and claim ([p. N: \"exact quote\"], [sheet NAME: \"...\"], [\"...\"]) and every quote is checked against the page it names; result.json gets `citations`, the manifest `citationScore`. Default `off`.",
  minCitationScore: "Needs citations: verify: an item whose citation score (supported quotes / all quotes, 0..1) is below this ends failed with kind ungrounded, its answer and citations kept.",
  schedule: "Deployed only: an EventBridge Scheduler expression, in UTC, e.g. cron(0 6 3 * ? *) or rate(1 day).",
  trigger: "Deployed only: `upload` starts a run for each file uploaded under inbox/<name>/ in the stack's bucket.",
  notify: "`webhook: https://...`: called once when the job ends with the job-finished event (job id, status, counts, cost, manifest URI), signed the Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature headers; docs/job-events.md).",
};

/** The JSON Schema (draft-07, which yaml-language-server reads) of a job file as written. */
export function jobJsonSchema(schema: z.ZodType = jobSpecSchema): Record<string, unknown> {
  const generated = z.toJSONSchema(schema, { io: "input", target: "draft-7" }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  const properties = rest.properties as Record<string, Record<string, unknown>>;
  for (const [field, help] of Object.entries(FIELD_HELP)) {
    if (properties[field]) properties[field] = { description: help, ...properties[field] };
  }
  return {
    $schema,
    $comment: "Generated by `longdoc schema` from shared/job/schema.ts; regenerate with `node bin/longdoc.ts schema > jobs/job.schema.json`, do not edit.",
    title: "longdoc job file",
    description: "A longdoc job: which documents, which questions, which model, what output, what budget. `longdoc validate` checks everything here and the rules between fields.",
    ...rest,
  };
}

/** The schema as printed and committed: two-space JSON and a final newline. */
export const jobJsonSchemaText = (schema: z.ZodType = jobSpecSchema) => JSON.stringify(jobJsonSchema(schema), null, 2) + "\n";

export function registerSchema(program: Command): void {
  program
    .command("schema")
    .description("print the job file's JSON Schema (for editors: jobs/job.schema.json is this output)")
    .action(() => {
      process.stdout.write(jobJsonSchemaText());
    });
}
