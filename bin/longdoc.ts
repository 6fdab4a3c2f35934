#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerCancel } from "../cli/commands/cancel.ts";
import { registerEstimate } from "../cli/commands/estimate.ts";
import { registerExtract } from "../cli/commands/extract.ts";
import { registerResults } from "../cli/commands/results.ts";
import { registerRetry } from "../cli/commands/retry.ts";
import { registerRun } from "../cli/commands/run.ts";
import { registerSim } from "../cli/commands/sim.ts";
import { registerStatus } from "../cli/commands/status.ts";
import { registerSubmit } from "../cli/commands/submit.ts";
import { registerValidate } from "../cli/commands/validate.ts";
import { EXIT } from "../cli/exit.ts";

const program = new Command()
  .name("longdoc")
  .description("Long-context document reasoning on Qwen3-Max: whole documents in, reasoning traces and answers out")
  .exitOverride()
  .showHelpAfterError();

registerRun(program);
registerValidate(program);
registerExtract(program);
registerEstimate(program);
registerSim(program);
registerStatus(program);
registerResults(program);
registerSubmit(program);
registerRetry(program);
registerCancel(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    throw e;
  }
}
