#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { packageVersion } from "../cli/version.ts";
import { commandsFor } from "../cli/commands/index.ts";
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

for (const register of await commandsFor(process.argv[2])) register(program, edge);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    throw e;
  }
}
