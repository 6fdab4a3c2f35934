import { Option, type Command } from "commander";
import { stateOwner } from "../../shared/local/owner.ts";
import { deployedStoreReader, localStateReader } from "../readers.ts";
import { fail, positiveInt } from "../exit.ts";
import type { Edge } from "../edge.ts";
import { startUiServer } from "../ui/server.ts";

interface UiFlags {
  port: number;
  state: string;
  deployed?: boolean;
}

/** The contract's default port. */
export const UI_PORT = 4680;

/** How often a job page polls: the local state is a file on this machine; S3 is requests billed per call. */
const POLL_MS = { local: 1000, deployed: 3000 };

export function registerUi(program: Command, edge: Edge): void {
  program
    .command("ui")
    .description("a read-only web page on 127.0.0.1: the jobs, and per job its live progress, items, errors and plots (reads the local state, or the deployed stack with --deployed)")
    .option("--port <n>", "the loopback port to serve on (0: any free port)", (v) => (v === "0" ? 0 : positiveInt("--port")(v)), UI_PORT)
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .addOption(new Option("--deployed", "read the runs in the deployed stack's bucket (.sst/outputs.json or LONGDOC_BUCKET)").conflicts("state"))
    .action(async (flags: UiFlags) => {
      const reader = flags.deployed ? deployedStoreReader(edge.env) : localStateReader(flags.state);
      try {
        const server = await startUiServer({
          reader,
          port: flags.port,
          pollMs: flags.deployed ? POLL_MS.deployed : POLL_MS.local,
          source: flags.deployed ? "the deployed stack's bucket" : `the local state '${flags.state}'`,
          // A local job still `running` with no live process on its state was interrupted (as `status` says).
          adjust: flags.deployed ? undefined : (s) => (s === "running" && stateOwner(flags.state) === null ? "interrupted" : s),
        });
        process.stdout.write(`longdoc ui: ${server.url} (read-only; Ctrl-C stops it)\n`);
        const stop = () => {
          void server.close().then(() => reader.close());
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      } catch (e) {
        await reader.close();
        const code = (e as { code?: string }).code;
        if (code === "EADDRINUSE") {
          process.stderr.write(`longdoc: port ${flags.port} on 127.0.0.1 is in use; pass --port with another (or 0 for any free port)\n`);
          process.exitCode = 1;
          return;
        }
        fail(e);
      }
    });
}
