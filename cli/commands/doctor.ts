import type { Command } from "commander";
import { runDoctor, renderDoctor } from "../doctor.ts";
import { EXIT, fail } from "../exit.ts";
import { human, type Edge } from "../edge.ts";

export function registerDoctor(program: Command, edge: Edge): void {
  program
    .command("doctor")
    .description("check what a first run needs and say what to fix: Node, the model key on its region's endpoint; with --deployed, AWS credentials and region, the stack's outputs, the stage's secrets")
    .option("--deployed", "also check the deployed stack: AWS credentials and region, the stage's outputs, the stack answering, its secrets set")
    .option("--stage <name>", "the deployed stage to check (default: the only one deployed from this folder)")
    .option("--json", "print {ok, checks: [{name, ok, detail, fix}]} as JSON on the last line")
    .action(async (flags: { deployed?: boolean; stage?: string; json?: boolean }) => {
      try {
        const report = await runDoctor({ env: edge.env, cwd: process.cwd(), deployed: flags.deployed || flags.stage !== undefined, stage: flags.stage });
        human(flags.json).write(renderDoctor(report) + "\n");
        if (flags.json) process.stdout.write(JSON.stringify(report) + "\n");
        process.exitCode = report.ok ? EXIT.ok : EXIT.input;
      } catch (e) {
        fail(e);
      }
    });
}
