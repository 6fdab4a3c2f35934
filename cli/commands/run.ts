import type { Command } from "commander";
import cliProgress from "cli-progress";
import { createLog, redactUrl } from "../../shared/log.ts";
import { runLocalJob } from "../../shared/local/run.ts";
import { summary, type Manifest } from "../../shared/run/manifest.ts";
import type { NotifyRecord } from "../../shared/run/notify.ts";
import { checkFolderOption, EXIT, fail, MAX_LOCAL_WORKERS, parseWorkers, signalExitCode, stopOnSignals } from "../exit.ts";
import { checkJob, ignoredBaseUrlNote, warnOnStderr, webhookNote } from "../preflight.ts";
import { renderTable } from "../table.ts";
import { human, type Edge } from "../edge.ts";
import { addOverrideOptions, describeOverrides, overridesOf } from "../overrides.ts";
import type { JobOverrides } from "../../shared/submit/select.ts";

interface RunFlags extends JobOverrides {
  out: string;
  workers?: string;
  json?: boolean;
  state: string;
  allowOutside?: boolean;
  new?: boolean;
}

export function registerRun(program: Command, edge: Edge): void {
  const command = program
    .command("run")
    .description("run a job end to end on this machine (embedded SQS/S3 emulator; Qwen simulator unless DASHSCOPE_API_KEY is set)")
    .argument("<job.yaml>", "the job file, or an OpenAI Batch input file (.jsonl): one item per line")
    .option("--out <dir>", "mirror the run to <dir>/<jobId>/", "out")
    .option("--workers <n>", `concurrent local workers, each a process, 1 to ${MAX_LOCAL_WORKERS} (default: the job's limits.concurrency, at most 4 and at most the job's items)`)
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .option("--allow-outside", "accept documents and an output.schemaFile that resolve outside the job file's folder and the current repository")
    .option("--new", "start a new job even if this job file's last job on this state was interrupted (default: resume it)")
    .option("--json", "print the run summary as JSON on the last line");
  addOverrideOptions(command)
    .action(async (jobFile: string, flags: RunFlags) => {
      // Every option and every check of the job before anything is submitted or paid for.
      let workers: number | undefined;
      try {
        workers = parseWorkers(flags.workers);
        await checkFolderOption("--out", flags.out);
        await checkFolderOption("--state", flags.state);
        const settings = edge.settings();
        const loaded = await checkJob(jobFile, settings.catalog, { allowOutside: flags.allowOutside, onWarning: warnOnStderr }, overridesOf(flags));
        const notes = [ignoredBaseUrlNote(edge.env, settings), webhookNote(loaded.spec, settings), describeOverrides(loaded.overrides)];
        for (const note of notes) if (note) process.stderr.write(note + "\n");
      } catch (e) {
        return fail(e);
      }
      const bar = new cliProgress.SingleBar(
        { format: "{jobId} [{bar}] {value}/{total} items | {duration}s", stream: process.stderr, noTTYOutput: true, notTTYSchedule: 5000, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      let started = false;
      // Either signal keeps the state: running the same job file again resumes.
      let jobId: string | undefined;
      const resumeHint = () =>
        `resume it with: longdoc run ${jobFile} --state ${flags.state}` + (jobId ? `   (or: longdoc retry ${jobId} --state ${flags.state})` : "");
      const stop = stopOnSignals(resumeHint);
      try {
        const { job, manifest, outDir, usedSimulator, notify } = await runLocalJob({
          jobFile,
          overrides: overridesOf(flags),
          fresh: flags.new,
          signal: stop.signal,
          outDir: flags.out,
          workers,
          settings: edge.settings(),
          allowOutside: flags.allowOutside,
          dataDir: flags.state,
          log: createLog({ level: edge.settings().logLevel }),
          onNotice: (message) => process.stderr.write(`\n${message}\n`),
          onSubmitted: (job, { baseURL, resumed }) => {
            jobId = job.jobId;
            if (resumed) process.stderr.write(`resuming job ${job.jobId}, which an earlier run of ${jobFile} left unfinished (--new starts a new job)\n`);
            process.stderr.write(`job ${job.jobId}: ${job.items.length} item(s), model ${job.model} at ${redactUrl(baseURL)}\n`);
            bar.start(job.items.length, 0, { jobId: job.jobId });
            started = true;
          },
          onProgress: (p) => bar.update(p.finished),
        });
        bar.stop();
        if (stop.signal.aborted && manifest.status === "running") {
          const done = manifest.counts.succeeded + manifest.counts.failed + manifest.counts.skipped;
          process.stderr.write(
            `interrupted (${stop.first()}): job ${job.jobId} has ${done} of ${manifest.counts.total} item(s) finished; nothing finished will be paid for again.\n` + resumeHint() + "\n",
          );
          process.exitCode = signalExitCode(stop.first() ?? "SIGINT");
          return;
        }
        if (usedSimulator) process.stderr.write("note: answers come from the local simulator (set DASHSCOPE_API_KEY to call Qwen3-Max)\n");
        const pending = webhookPendingNote(notify, job.jobId, flags.state);
        if (pending) process.stderr.write(pending + "\n");
        human(flags.json).write(renderSummary(manifest) + `\nrun written to ${outDir}\n`);
        if (flags.json) process.stdout.write(JSON.stringify(summary(manifest)) + "\n");
        process.exitCode = manifest.status === "succeeded" ? EXIT.ok : EXIT.itemsFailed;
      } catch (e) {
        if (started) bar.stop();
        fail(e);
      } finally {
        stop.dispose();
      }
    });
}

/**
 * A webhook delivery the run's workers had not finished when they stopped (a slow or failing
 * receiver): said, since the local workers stop with the run and make no further attempt.
 */
export function webhookPendingNote(notify: NotifyRecord | undefined, jobId: string, state: string): string | null {
  const w = notify?.webhook;
  if (!w?.pending) return null;
  const so = w.attempts === 0 ? "its first call had no answer yet" : `${w.attempts} attempt(s) so far, last: ${w.error ?? `status ${w.status}`}`;
  return (
    `note: the webhook delivery to ${w.url} (${w.id}) was still pending when the run stopped its workers (${so}); ` +
    `the local workers stop with the run, so no further attempt is made. notify.json records the event and each attempt ` +
    `('longdoc results ${jobId} --state ${state}' copies it out again).`
  );
}

export function renderSummary(m: Manifest): string {
  // citations: verify: a column with each item's citation score, and the job's quotes in a line.
  const cited = m.citations;
  const rows = m.items.map((i) => [
    i.id,
    i.status,
    i.attempts,
    i.usage.inputTokens,
    i.usage.reasoningTokens,
    i.usage.outputTokens,
    i.usage.cachedTokens,
    i.cost.toFixed(4),
    i.cacheSavings.toFixed(4),
    ...(cited ? [i.citationScore === undefined ? "-" : i.citationScore.toFixed(2)] : []),
    i.error ? `${i.error.kind}: ${i.error.message}`.slice(0, 80) : "",
  ]);
  rows.push(["total", m.status, "", m.usage.inputTokens, m.usage.reasoningTokens, m.usage.outputTokens, m.usage.cachedTokens, m.cost.toFixed(4), m.cacheSavings.toFixed(4), ...(cited ? [cited.score.toFixed(2)] : []), ""]);
  const c = m.counts;
  return (
    renderTable(["item", "status", "attempts", "input", "reasoning", "output", "cached", `cost ${m.currency}`, `cache saved ${m.currency}`, ...(cited ? ["citations"] : []), "error"], rows) +
    `\n${c.succeeded} succeeded, ${c.failed} failed, ${c.skipped} skipped of ${c.total}` +
    (m.truncatedItems ? `; ${m.truncatedItems} answer(s) hit the output cap (maxOutputTokens) and are truncated` : "") +
    (cited
      ? `\ncitations: ${cited.supported} of ${cited.total} quote(s) found on the page or sheet cited, ${cited.wrongPage} only on another, ${cited.notFound} nowhere in the document` +
        (cited.ungrounded ? `; ${cited.ungrounded} item(s) failed ungrounded (below minCitationScore)` : "")
      : "") +
    renderAgreement(m)
  );
}

/** Sampled jobs: k, overall agreement, tool calls and the fields the samples disagreed on, per item. */
export function renderAgreement(m: Manifest): string {
  const sampled = m.items.filter((i) => i.samples !== undefined);
  if (!sampled.length) return "";
  const rows = sampled.map((i) => [
    i.id,
    i.samples!,
    `${Math.round((i.agreement ?? 1) * 100)}%`,
    i.toolCalls ?? 0,
    (i.agreementByField ?? []).filter((f) => f.agreement < 1).map((f) => `${f.path} ${Math.round(f.agreement * 100)}%`).join(", ").slice(0, 100),
  ]);
  return "\n\n" + renderTable(["item", "samples", "agreement", "tool calls", "fields not unanimous"], rows);
}
