import type { Command } from "commander";
import { ObjectStore } from "../../shared/run/store.ts";
import { cancelJob } from "../../shared/run/control.ts";
import { readStackCoordinates, stackClients } from "../stack.ts";
import { cancelLocalJob } from "../../shared/local/run.ts";
import { summary, type Manifest } from "../../shared/run/manifest.ts";
import { checkFolderOption, endUnchanged, EXIT, fail } from "../exit.ts";
import { renderSummary } from "./run.ts";
import { human, localControl, type Edge } from "../edge.ts";

interface CancelFlags {
  out: string;
  json?: boolean;
  state: string;
  deployed?: boolean;
  stage?: string;
}

export function registerCancel(program: Command, edge: Edge): void {
  program
    .command("cancel")
    .description("stop a job: its queued items end skipped (kind cancelled) without calling the model; answered items keep their results")
    .argument("<jobId>", "the job id `longdoc run` or `longdoc submit` printed")
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .option("--out <dir>", "mirror the run to <dir>/<jobId>/", "out")
    .option("--deployed", "cancel on the deployed stack (.sst/outputs.json or LONGDOC_BUCKET/LONGDOC_QUEUE_URL); its workers skip the queued items")
    .option("--stage <name>", "the deployed stage whose outputs to use (default: the only one deployed from this folder)")
    .option("--json", "print the run summary as JSON on the last line")
    .action(async (jobId: string, flags: CancelFlags) => {
      if (flags.deployed) return cancelDeployed(jobId, flags, edge);
      try {
        await checkFolderOption("--out", flags.out);
        const out = await cancelLocalJob({
          ...localControl(jobId, flags, edge),
          onMarked: (c) =>
            process.stderr.write(
              `job ${jobId}: ${c.alreadyCancelled ? "already marked cancelled" : "cancel marker written"}; ${c.pending.length} of ${c.job.items.length} item(s) had not finished, recording them skipped\n`,
            ),
          onProgress: (p) => process.stderr.write(`job ${jobId}: ${p.finished} of ${p.total} item(s) finished\n`),
        });
        if (out.state === "finished") return alreadyFinished(out.manifest, flags.json);
        const skipped = out.manifest.items.filter((i) => i.status === "skipped" && i.error?.kind === "cancelled").length;
        human(flags.json).write(
          `cancelled job ${jobId}: ${skipped} item(s) skipped without calling the model\n` +
            renderSummary(out.manifest) +
            `\nrun written to ${out.outDir}\n`,
        );
        if (flags.json) process.stdout.write(JSON.stringify(summary(out.manifest)) + "\n");
        process.exitCode = EXIT.ok;
      } catch (e) {
        fail(e);
      }
    });
}

function alreadyFinished(m: Manifest, json?: boolean): void {
  const c = m.counts;
  endUnchanged(`job ${m.jobId} already finished (${m.status}: ${c.succeeded} succeeded, ${c.failed} failed, ${c.skipped} skipped of ${c.total}); nothing changed`, m, json);
}

async function cancelDeployed(jobId: string, flags: CancelFlags, edge: Edge): Promise<void> {
  let close = () => {};
  try {
    const coords = readStackCoordinates(edge.env, process.cwd(), flags.stage);
    const { s3, sqs } = stackClients(coords, edge.env);
    sqs.destroy();
    close = () => s3.destroy();
    const c = await cancelJob({ store: new ObjectStore(s3, coords.bucket) }, jobId);
    if (c.state === "finished") return alreadyFinished(c.manifest, flags.json);
    human(flags.json).write(
      `job ${jobId}: ${c.alreadyCancelled ? "already marked cancelled" : "cancel marker written"} at s3://${coords.bucket}/runs/${jobId}/cancel.json; ` +
        `the deployed workers record its ${c.pending.length} unfinished item(s) skipped as they take their tasks\n`,
    );
    process.exitCode = EXIT.ok;
  } catch (e) {
    fail(e);
  } finally {
    close();
  }
}
