import { InvalidArgumentError, type Command } from "commander";
import cliProgress from "cli-progress";
import { ObjectStore } from "../../shared/run/store.ts";
import { retryJob, type RetryRecord } from "../../shared/run/control.ts";
import { readStackCoordinates, stackClients, stackCoordinator } from "../stack.ts";
import { retryLocalJob } from "../../shared/local/run.ts";
import { summary, type Manifest } from "../../shared/run/manifest.ts";
import { deployment } from "../../shared/settings.ts";
import { checkFolderOption, endUnchanged, EXIT, fail, MAX_LOCAL_WORKERS, signalExitCode, stopOnSignals, workersArg } from "../exit.ts";
import { renderSummary } from "./run.ts";
import { human, localControl, type Edge } from "../edge.ts";

interface RetryFlags {
  out: string;
  workers: number;
  json?: boolean;
  state: string;
  deployed?: boolean;
  stage?: string;
  maxOutputTokens?: number;
}

/** --max-output-tokens: a whole number within the API's largest answer cap (docs/qwen-api.md §2). */
function maxOutputTokensArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65_536) throw new InvalidArgumentError("must be a whole number from 1 to 65536 (32768 with thinking on)");
  return n;
}

export function registerRetry(program: Command, edge: Edge): void {
  program
    .command("retry")
    .description("re-queue the items of a finished run that failed or were skipped, and run them again (a local run, or --deployed)")
    .argument("<jobId>", "the job id `longdoc run` or `longdoc submit` printed")
    .option("--out <dir>", "mirror the run to <dir>/<jobId>/", "out")
    .option("--workers <n>", `concurrent local workers, 1 to ${MAX_LOCAL_WORKERS} (at most the items re-queued)`, workersArg, deployment.local.workers)
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .option("--deployed", "re-queue on the deployed stack (.sst/outputs.json or LONGDOC_BUCKET/LONGDOC_QUEUE_URL); its workers run them")
    .option("--max-output-tokens <n>", "re-run with this larger answer cap: the failed and skipped items, and those whose answer was cut at the cap and kept", maxOutputTokensArg)
    .option("--stage <name>", "the deployed stage whose outputs to use (default: the only one deployed from this folder)")
    .option("--json", "print the run summary as JSON on the last line")
    .action(async (jobId: string, flags: RetryFlags) => {
      if (flags.deployed) return retryDeployed(jobId, flags, edge);
      const bar = new cliProgress.SingleBar(
        { format: "{jobId} [{bar}] {value}/{total} items | {duration}s", stream: process.stderr, noTTYOutput: true, notTTYSchedule: 5000, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      let started = false;
      const stop = stopOnSignals(() => `resume it with: longdoc retry ${jobId} --state ${flags.state}`);
      try {
        await checkFolderOption("--out", flags.out);
        const out = await retryLocalJob({
          ...localControl(jobId, flags, edge),
          signal: stop.signal,
          onNotice: (message) => process.stderr.write(`\n${message}\n`),
          maxOutputTokens: flags.maxOutputTokens,
          onRequeued: (record, job) => {
            process.stderr.write(describeRound(record));
            bar.start(job.items.length, job.items.length - record.items.length, { jobId: job.jobId });
            started = true;
          },
          onResumed: (job) => {
            process.stderr.write(`job ${job.jobId} was interrupted before it finished: resuming it (finished items are not called again)\n`);
            bar.start(job.items.length, 0, { jobId: job.jobId });
            started = true;
          },
          onProgress: (p) => bar.update(p.finished),
        });
        if (started) bar.stop();
        if (stop.signal.aborted && out.manifest.status === "running") {
          const c = out.manifest.counts;
          process.stderr.write(
            `interrupted (${stop.first()}): job ${jobId} has ${c.succeeded + c.failed + c.skipped} of ${c.total} item(s) finished; nothing finished will be paid for again.\n` +
              `resume it with: longdoc retry ${jobId} --state ${flags.state}\n`,
          );
          process.exitCode = signalExitCode(stop.first() ?? "SIGINT");
          return;
        }
        if (!out.requeued && out.resumed) {
          human(flags.json).write(renderSummary(out.manifest) + "\n");
          if (flags.json) process.stdout.write(JSON.stringify(summary(out.manifest)) + "\n");
          process.exitCode = out.manifest.status === "succeeded" ? EXIT.ok : EXIT.itemsFailed;
          return;
        }
        if (!out.requeued) return nothingToRetry(out.manifest, flags.json);
        if (out.usedSimulator) process.stderr.write("note: answers come from the local simulator (set DASHSCOPE_API_KEY to call Qwen3-Max)\n");
        human(flags.json).write(renderSummary(out.manifest) + `\nrun written to ${out.outDir}\n`);
        if (flags.json) process.stdout.write(JSON.stringify(summary(out.manifest)) + "\n");
        process.exitCode = out.manifest.status === "succeeded" ? EXIT.ok : EXIT.itemsFailed;
      } catch (e) {
        if (started) bar.stop();
        fail(e);
      } finally {
        stop.dispose();
      }
    });
}

/** What a retry round re-queued and which markers it removed, one line each. */
function describeRound(r: RetryRecord): string {
  const cap = r.maxOutputTokens !== undefined ? ` with an answer cap of ${r.maxOutputTokens} tokens` : "";
  const lines = [`job ${r.jobId}: retry ${r.round}: re-queued ${r.items.length} item(s)${cap}; earlier results moved to items/<id>/previous/${r.round}/ (record: retries/${r.round}.json)`];
  for (const i of r.items) lines.push(`  ${i.id}: was ${i.status} after ${i.attempts} attempt(s)${i.error ? ` (${i.error.kind})` : ""}`);
  const reason = (m: unknown) => (m && typeof m === "object" && typeof (m as { reason?: unknown }).reason === "string" ? `: ${(m as { reason: string }).reason}` : "");
  if (r.removed.halt !== undefined) lines.push(`removed the halt marker (the job had been halted${reason(r.removed.halt)})`);
  if (r.removed.cancel !== undefined) lines.push("removed the cancel marker (the job had been cancelled)");
  return lines.join("\n") + "\n";
}

function nothingToRetry(m: Manifest, json?: boolean): void {
  endUnchanged(`nothing to retry: all ${m.counts.total} item(s) of job ${m.jobId} succeeded`, m, json);
}

async function retryDeployed(jobId: string, flags: RetryFlags, edge: Edge): Promise<void> {
  let close = () => {};
  try {
    const coords = readStackCoordinates(edge.env, process.cwd(), flags.stage);
    const { s3, sqs } = stackClients(coords, edge.env);
    close = () => {
      s3.destroy();
      sqs.destroy();
    };
    const { coord, close: closeCoord } = stackCoordinator(coords);
    const closeClients = close;
    close = () => {
      closeClients();
      closeCoord();
    };
    const out = await retryJob({ store: new ObjectStore(s3, coords.bucket), sqs, queueUrl: coords.queueUrl, coord }, jobId, { maxOutputTokens: flags.maxOutputTokens });
    if (!out.requeued) return nothingToRetry(out.manifest, flags.json);
    human(flags.json).write(describeRound(out.record) + `the deployed workers take them from ${coords.queueUrl}; follow the run in s3://${coords.bucket}/runs/${jobId}/manifest.json\n`);
    if (flags.json) process.stdout.write(JSON.stringify(summary(out.manifest)) + "\n");
    process.exitCode = EXIT.ok;
  } catch (e) {
    fail(e);
  } finally {
    close();
  }
}
