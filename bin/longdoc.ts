#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { packageVersion } from "../cli/version.ts";
import { registerCancel } from "../cli/commands/cancel.ts";
import { registerDoctor } from "../cli/commands/doctor.ts";
import { registerEstimate } from "../cli/commands/estimate.ts";
import { registerExtract } from "../cli/commands/extract.ts";
import { registerModels } from "../cli/commands/models.ts";
import { registerJobs } from "../cli/commands/jobs.ts";
import { registerResults } from "../cli/commands/results.ts";
import { registerRetry } from "../cli/commands/retry.ts";
import { registerRun } from "../cli/commands/run.ts";
import { registerSchema } from "../cli/commands/schema.ts";
import { registerSim } from "../cli/commands/sim.ts";
import { registerStatus } from "../cli/commands/status.ts";
import { registerSubmit } from "../cli/commands/submit.ts";
import { registerUi } from "../cli/commands/ui.ts";
import { registerValidate } from "../cli/commands/validate.ts";
import { createEdge } from "../cli/edge.ts";
import { EXIT } from "../cli/exit.ts";

const version = packageVersion();

// The edge: the one place the CLI reads its environment.
const edge = createEdge(process.env);

const program = new Command()
  .name("longdoc")
  .description("Long-context document reasoning on Qwen3-Max: whole documents in, reasoning traces and answers out")
  .version(version, "-V, --version")
  .exitOverride()
  .showHelpAfterError();

registerRun(program, edge);
registerValidate(program, edge);
registerExtract(program, edge);
registerEstimate(program, edge);
registerSim(program, edge);
registerStatus(program, edge);
registerJobs(program, edge);
registerResults(program, edge);
registerSubmit(program, edge);
registerRetry(program, edge);
registerCancel(program, edge);
registerUi(program, edge);
registerSchema(program);
registerModels(program, edge);
registerDoctor(program, edge);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    throw e;
  }
}
