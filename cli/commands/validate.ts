import type { Command } from "commander";
import { LongdocError } from "../../shared/errors.ts";
import { formatProblem, JobFileError } from "../../shared/job/load.ts";
import { EXIT, fail } from "../exit.ts";
import { checkJob, warnOnStderr } from "../preflight.ts";
import type { Edge } from "../edge.ts";
import { validate } from "../api.ts";

export function registerValidate(program: Command, edge: Edge): void {
  program
    .command("validate")
    .description("check job files as a run would before calling the model (fields, documents, output schema); prints file:line: field: message for each problem")
    .argument("<job.yaml...>", "job files")
    .option("--allow-outside", "accept documents and an output.schemaFile that resolve outside the job file's folder and the current repository")
    .option("--json", "print {ok, files: [{file, ok, job, model, problems}]} as JSON instead of lines")
    .action(async (files: string[], flags: { allowOutside?: boolean; json?: boolean }) => {
      if (flags.json) {
        try {
          const report = await validate(files, { allowOutside: flags.allowOutside, env: edge.env });
          process.stdout.write(JSON.stringify(report) + "\n");
          process.exitCode = report.ok ? EXIT.ok : EXIT.input;
        } catch (e) {
          fail(e);
        }
        return;
      }
      let bad = 0;
      for (const file of files) {
        try {
          // The same checks `run` makes before it submits: a file that passes here does not fail there on them.
          const { spec, batch } = await checkJob(file, edge.settings().catalog, { allowOutside: flags.allowOutside, onWarning: warnOnStderr });
          const what = batch ? `OpenAI Batch input, ${batch.requests.length} request(s)` : `${spec.documents.length} source(s)`;
          process.stdout.write(`${file}: ok (${spec.name}, ${what}, model ${spec.model})\n`);
          // A line asking for what Model Studio cannot do fails alone when run; said now, not after.
          for (const r of batch?.requests ?? []) {
            if (r.refused) warnOnStderr(`${file}:${r.line}: ${r.refused.field}: ${r.refused.message}; this line will fail, the others run`);
          }
        } catch (e) {
          if (e instanceof JobFileError) {
            bad++;
            for (const p of e.problems) process.stdout.write(formatProblem(p) + "\n");
          } else if (LongdocError.is(e) && e.code !== "usage") {
            bad++;
            process.stdout.write(e.message + "\n");
          } else {
            return fail(e);
          }
        }
      }
      process.exitCode = bad > 0 ? EXIT.input : EXIT.ok;
    });
}
