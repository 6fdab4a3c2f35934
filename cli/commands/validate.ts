import type { Command } from "commander";
import { formatProblem, JobFileError, loadJobFile } from "../../shared/job/load.ts";
import { EXIT, fail } from "../exit.ts";
import type { Edge } from "../edge.ts";

export function registerValidate(program: Command, edge: Edge): void {
  program
    .command("validate")
    .description("check job files; prints file:line: field: message for each problem")
    .argument("<job.yaml...>", "job files")
    .action(async (files: string[]) => {
      let bad = 0;
      for (const file of files) {
        try {
          const spec = await loadJobFile(file);
          process.stdout.write(`${file}: ok (${spec.name}, ${spec.documents.length} source(s), model ${spec.model})\n`);
        } catch (e) {
          if (!(e instanceof JobFileError)) return fail(e);
          bad++;
          for (const p of e.problems) process.stdout.write(formatProblem(p) + "\n");
        }
      }
      process.exitCode = bad > 0 ? EXIT.input : EXIT.ok;
    });
}
