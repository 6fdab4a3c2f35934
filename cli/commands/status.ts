import { formatCost } from "../../shared/model/catalog.ts";
import { Option, type Command } from "commander";
import cliProgress from "cli-progress";
import { newProgressCache, readProgress, withOpenAIBatch, type RunProgress } from "../../shared/run/progress.ts";
import { stateOwner } from "../../shared/local/owner.ts";
import { deployedStoreReader, localStateReader } from "../readers.ts";
import { EXIT, fail } from "../exit.ts";
import { formatDuration, renderTable } from "../table.ts";
import { human, type Edge } from "../edge.ts";

interface StatusFlags {
  watch?: boolean;
  json?: boolean;
  state: string;
  deployed?: boolean;
  stage?: string;
}

/** How often --watch reads the run again: the local state is a file on this machine; S3 is requests billed per call. */
const POLL_MS = { local: 1000, deployed: 3000 };

export function registerStatus(program: Command, edge: Edge): void {
  program
    .command("status")
    .description("progress of a run: counts by status, tokens, cost, ETA (reads the local state of `longdoc run`, or the deployed stack with --deployed)")
    .argument("<jobId>", "the job id `longdoc run` or `longdoc submit` printed")
    .option("--watch", "show a live progress bar until the run is no longer running")
    .option("--json", "print the progress as one JSON object on the last line")
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .addOption(new Option("--deployed", "read the run in the deployed stack's bucket (.sst/outputs.json or LONGDOC_BUCKET)").conflicts("state"))
    .option("--stage <name>", "the deployed stage whose outputs to use (default: the only one deployed from this folder)")
    .action(async (jobId: string, flags: StatusFlags) => {
      const reader = flags.deployed ? deployedStoreReader(edge.env, process.cwd(), flags.stage) : localStateReader(flags.state);
      const pollMs = flags.deployed ? POLL_MS.deployed : POLL_MS.local;
      const cache = newProgressCache();
      // A local job still `running` with no live process on its state was interrupted (Ctrl-C, kill -9).
      const interrupted = (p: RunProgress): RunProgress =>
        !flags.deployed && p.status === "running" && stateOwner(flags.state) === null ? { ...p, status: "interrupted", etaMs: null } : p;
      const poll = async () => interrupted(await reader.read((store) => readProgress(store, jobId, { cache })));
      let bar: cliProgress.SingleBar | undefined;
      try {
        let p = await poll();
        if (flags.watch && p.status === "running") {
          bar = new cliProgress.SingleBar(
            {
              format: "{jobId} [{bar}] {value}/{total} items | {succeeded} ok, {failed} failed, {skipped} skipped | ${cost} | {elapsed} elapsed, ETA {etaLeft}",
              stream: process.stderr,
              noTTYOutput: true,
              notTTYSchedule: 5000,
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.counts.total, finishedOf(p), barPayload(p));
          while (p.status === "running") {
            await new Promise((r) => setTimeout(r, pollMs));
            p = await poll();
            bar.update(finishedOf(p), barPayload(p));
          }
          bar.stop();
          bar = undefined;
        }
        human(flags.json).write(renderProgress(p) + "\n");
        // A batch-file job also reads as OpenAI's batch object, for scripts written for that API.
        if (flags.json) process.stdout.write(JSON.stringify(await reader.read((store) => withOpenAIBatch(store, p))) + "\n");
        process.exitCode = p.status === "running" || p.status === "succeeded" ? EXIT.ok : EXIT.itemsFailed;
      } catch (e) {
        bar?.stop();
        fail(e);
      } finally {
        await reader.close();
      }
    });
}

const finishedOf = (p: RunProgress) => p.counts.succeeded + p.counts.failed + p.counts.skipped;

const barPayload = (p: RunProgress) => ({
  jobId: p.jobId,
  succeeded: p.counts.succeeded,
  failed: p.counts.failed,
  skipped: p.counts.skipped,
  cost: formatCost(p.cost, p.currency),
  elapsed: formatDuration(p.elapsedMs),
  etaLeft: formatDuration(p.etaMs),
});

export function renderProgress(p: RunProgress): string {
  const c = p.counts;
  const flags = [p.halted ? "halted" : "", p.cancelled ? "cancelled" : ""].filter(Boolean).join(", ");
  const head = `job ${p.jobId} (${p.job}, model ${p.model}): ${p.status}${flags && p.status === "running" ? ` (${flags})` : ""}`;
  const table = renderTable(
    ["succeeded", "failed", "skipped", "queued", "retrying", "total"],
    [[c.succeeded, c.failed, c.skipped, c.queued, c.retrying, c.total]],
  );
  const u = p.usage;
  const tokens = `tokens: ${u.inputTokens} input (${u.cachedTokens} cached), ${u.outputTokens} output (${u.reasoningTokens} reasoning)`;
  const cost = `cost: ${formatCost(p.cost, p.currency)}` + (p.cacheSavings > 0 ? ` (cache saved ${formatCost(p.cacheSavings, p.currency)})` : "");
  const time =
    p.status === "running"
      ? `elapsed ${formatDuration(p.elapsedMs)}` +
        (p.itemsPerMinute !== null ? `, ${p.itemsPerMinute} items/min, ETA ${formatDuration(p.etaMs)}` : ", ETA unknown until an item finishes")
      : `took ${formatDuration(p.elapsedMs)} (started ${p.startedAt}, finished ${p.finishedAt})`;
  const b = p.batches;
  const batches = b
    ? [`batches: ${Object.entries(b.states).map(([state, n]) => `${n} ${state}`).join(", ") || "none"}; requests ${b.requests.completed} answered, ${b.requests.failed} failed, of ${b.requests.total}`]
    : [];
  const hint = p.status === "interrupted" ? [`the run that drove it stopped before it finished: resume it with 'longdoc retry ${p.jobId}' (finished items are not called again)`] : [];
  return [head, table, ...batches, tokens, cost, time, ...hint].join("\n");
}
