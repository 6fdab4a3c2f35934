import type { Command } from "commander";
import { formatCost } from "../../shared/model/catalog.ts";
import type { JobEstimate } from "../../shared/submit/estimate.ts";
import { estimateLoaded } from "../../shared/submit/estimate-loaded.ts";
import type { JobOverrides } from "../../shared/submit/select.ts";
import { addOverrideOptions, describeOverrides, overridesOf } from "../overrides.ts";
import { EXIT, fail } from "../exit.ts";
import { checkJob, warnOnStderr } from "../preflight.ts";
import { renderTable } from "../table.ts";
import { human, type Edge } from "../edge.ts";

export function registerEstimate(program: Command, edge: Edge): void {
  const command = program
    .command("estimate")
    .description("exact tokens per item, pricing tier and cost, without calling the model")
    .argument("<job.yaml>", "the job file, or an OpenAI Batch input file (.jsonl)")
    .option("--json", "print the estimate as one JSON object on the last line")
    .option("--allow-outside", "accept documents and an output.schemaFile that resolve outside the job file's folder and the current repository");
  addOverrideOptions(command).action(async (jobFile: string, flags: JobOverrides & { json?: boolean; allowOutside?: boolean }) => {
    try {
      const catalog = edge.settings().catalog;
      const loaded = await checkJob(jobFile, catalog, { allowOutside: flags.allowOutside, onWarning: warnOnStderr }, overridesOf(flags));
      const note = describeOverrides(loaded.overrides);
      if (note) process.stderr.write(note + "\n");
      const estimate = await estimateLoaded(loaded, { allowOutside: flags.allowOutside });
      human(flags.json).write(renderEstimate(estimate) + "\n");
      if (flags.json) process.stdout.write(JSON.stringify(estimate) + "\n");
      // A job that needs the quota longer than the queue keeps its tasks would be refused at submit.
      process.exitCode = estimate.totals.failing > 0 || !estimate.quota.fits ? EXIT.input : EXIT.ok;
    } catch (e) {
      fail(e);
    }
  });
}

export function renderEstimate(e: JobEstimate): string {
  const rows = e.items.map((i) => [
    i.id,
    i.inputTokens ?? "-",
    i.tier ?? "-",
    i.calls,
    i.inputCost.toFixed(4),
    i.cacheSavings.toFixed(4),
    i.cost.toFixed(4),
    i.error ? `${i.error.kind}: ${i.error.message}`.slice(0, 90) : [i.model ? `on ${i.model} (fallbackModel)` : "", i.truncated ? `truncated: ${i.truncated.tokensCut} tokens cut` : ""].filter(Boolean).join("; "),
  ]);
  rows.push(["total", e.totals.inputTokens, "", "", e.totals.inputCost.toFixed(4), e.totals.cacheSavings.toFixed(4), e.totals.cost.toFixed(4), ""]);
  const cap = e.maxCost === null ? "" : `; the job's cost cap is ${formatCost(e.maxCost, e.currency, null)}`;
  const c = e.currency;
  const first = e.items[0];
  const sampled =
    first && first.samples > 1
      ? `\n${first.samples} samples per call: each sample after the first reads the document prefix from the context cache`
      : "";
  const estimated = e.tokenCounts?.counts === "estimate"
    ? `\ntoken counts are ESTIMATES: longdoc does not carry ${e.model}'s tokenizer (${e.tokenCounts.tokenizer}), so Qwen3 counts stand in; budgets add ${Math.round(e.tokenCounts.safetyMargin * 100)} %, and tiers and costs may be off by about as much`
    : "";
  const tools = first && first.toolRounds > 1 ? `; with tools, "at most" counts ${first.toolRounds} model rounds per sample, each re-reading the cached prefix` : "";
  const cited = e.items.flatMap((i) => (i.citationTokens === undefined ? [] : [i.citationTokens]));
  const citations = cited.length
    ? `\ncitations: verify adds ${Math.min(...cited) === Math.max(...cited) ? cited[0] : `${Math.min(...cited)}-${Math.max(...cited)}`} tokens to each prompt (the citation instruction, after the documents; counted above)`
    : "";
  const batch = e.batch
    ? `\nmode: batch: at the Batch API's price (${e.batch.priceFactor * 100} % of realtime, input uncached) the input costs ${formatCost(e.batch.inputCost, c, null)}, at most ${formatCost(e.batch.cost, c, null)} (realtime above: input ${formatCost(e.totals.inputCost, c, null)}, at most ${formatCost(e.totals.cost, c, null)})`
    : "";
  return (
    renderTable(["item", "input tokens", "tier", "calls", `input ${c}`, `cache saves ${c}`, `at most ${c}`, "note"], rows) +
    `\n${e.items.length} item(s) on ${e.model}, priced in ${c} (region ${e.region}); "at most" adds the answer cap and thinking budget at the output price${cap}${sampled}${tools}${citations}${estimated}${batch}` +
    `\n${renderQuota(e.quota)}`
  );
}

/** The quota line: how long the job's calls need the quota, and whether the task queue keeps a task that long. */
export function renderQuota(q: JobEstimate["quota"]): string {
  const head = `quota: ${q.calls} call(s) reserving ${q.reservedTokens} tokens need ${q.hours} hours at ${q.rpm} RPM and ${q.tpm} TPM`;
  return q.fits
    ? `${head} (the task queue keeps a waiting task ${q.retentionHours} hours)`
    : `${head}: longer than the task queue keeps a waiting task (${q.retentionHours} hours); submit refuses this job: split its documents across jobs, lower maxOutputTokens or the thinking budget, or raise the quota`;
}
