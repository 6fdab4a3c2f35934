import type { Command } from "commander";
import { formatCost } from "../../shared/model/catalog.ts";
import { estimateJob, type JobEstimate } from "../../shared/submit/estimate.ts";
import { estimateBatch } from "../../shared/submit/batch.ts";
import { EXIT, fail } from "../exit.ts";
import { checkJob, warnOnStderr } from "../preflight.ts";
import { renderTable } from "../table.ts";
import { human, type Edge } from "../edge.ts";

export function registerEstimate(program: Command, edge: Edge): void {
  program
    .command("estimate")
    .description("exact tokens per item, pricing tier and cost, without calling the model")
    .argument("<job.yaml>", "the job file, or an OpenAI Batch input file (.jsonl)")
    .option("--json", "print the estimate as one JSON object on the last line")
    .option("--allow-outside", "accept documents that resolve outside the job file's folder and the current repository")
    .action(async (jobFile: string, flags: { json?: boolean; allowOutside?: boolean }) => {
      try {
        const catalog = edge.settings().catalog;
        const loaded = await checkJob(jobFile, catalog, { allowOutside: flags.allowOutside, onWarning: warnOnStderr });
        const estimate = loaded.batch
          ? estimateBatch({ spec: loaded.spec, model: loaded.model, batch: loaded.batch })
          : await estimateJob(loaded.spec, jobFile, catalog, { allowOutside: flags.allowOutside });
        human(flags.json).write(renderEstimate(estimate) + "\n");
        if (flags.json) process.stdout.write(JSON.stringify(estimate) + "\n");
        process.exitCode = estimate.totals.failing > 0 ? EXIT.input : EXIT.ok;
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
    i.error ? `${i.error.kind}: ${i.error.message}`.slice(0, 90) : i.truncated ? `truncated: ${i.truncated.tokensCut} tokens cut` : "",
  ]);
  rows.push(["total", e.totals.inputTokens, "", "", e.totals.inputCost.toFixed(4), e.totals.cacheSavings.toFixed(4), e.totals.cost.toFixed(4), ""]);
  const cap = e.maxCost === null ? "" : `; the job's cost cap is ${formatCost(e.maxCost, e.currency, null)}`;
  const c = e.currency;
  const first = e.items[0];
  const sampled =
    first && first.samples > 1
      ? `\n${first.samples} samples per call: each sample after the first reads the document prefix from the context cache`
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
    `\n${e.items.length} item(s) on ${e.model}, priced in ${c} (region ${e.region}); "at most" adds the answer cap and thinking budget at the output price${cap}${sampled}${tools}${citations}${batch}`
  );
}
