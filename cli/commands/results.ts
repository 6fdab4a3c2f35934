import { Option, type Command } from "commander";
import { downloadRun, writeBatchOutput } from "../results.ts";
import { writeCsvOutput } from "../results-csv.ts";
import { readProgress } from "../../shared/run/progress.ts";
import { deployedStoreReader, localStateReader } from "../readers.ts";
import { EXIT, fail } from "../exit.ts";
import type { Edge } from "../edge.ts";

interface ResultsFlags {
  out: string;
  format?: "jsonl" | "csv";
  state: string;
  deployed?: boolean;
  stage?: string;
}

export function registerResults(program: Command, edge: Edge): void {
  program
    .command("results")
    .description("download a run (a local run, or --deployed) to <out>/<jobId>/, or its answers as an OpenAI Batch output file (--format jsonl) or a CSV table (--format csv)")
    .argument("<jobId>", "the job id `longdoc run` or `longdoc submit` printed")
    .option("--out <dir>", "write under <dir>/<jobId>/", "out")
    .addOption(
      new Option("--format <format>", "jsonl: <out>/<jobId>/results.jsonl in the OpenAI Batch output line format, failed lines in errors.jsonl; csv: <out>/<jobId>/results.csv, one row per item").choices(["jsonl", "csv"]),
    )
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .addOption(new Option("--deployed", "read the run in the deployed stack's bucket (.sst/outputs.json or LONGDOC_BUCKET)").conflicts("state"))
    .option("--stage <name>", "the deployed stage whose outputs to use (default: the only one deployed from this folder)")
    .action(async (jobId: string, flags: ResultsFlags) => {
      const state = flags.deployed ? deployedStoreReader(edge.env, process.cwd(), flags.stage) : localStateReader(flags.state);
      try {
        if (flags.format === "csv") {
          const out = await state.read((store) => writeCsvOutput(store, jobId, flags.out));
          process.stdout.write(`wrote ${out.rows.length} row(s) and ${out.header.length} column(s) to ${out.file}\n`);
          if (out.pending.length) process.stderr.write(`note: the run is still running; ${out.pending.length} item(s) without a result are rows with status queued\n`);
        } else if (flags.format === "jsonl") {
          const out = await state.read((store) => writeBatchOutput(store, jobId, flags.out));
          process.stdout.write(`wrote ${out.lines.length} succeeded line(s) to ${out.file}\n`);
          if (out.errorFile) process.stdout.write(`wrote ${out.errors.length} failed or skipped line(s) to ${out.errorFile}\n`);
          if (out.pending.length) process.stderr.write(`note: the run is still running; ${out.pending.length} item(s) without a result have no line yet\n`);
        } else {
          const { dir, files, progress } = await state.read(async (store) => {
            const progress = await readProgress(store, jobId);
            return { ...(await downloadRun(store, jobId, flags.out)), progress };
          });
          process.stdout.write(`copied ${files} file(s) of run ${jobId} (${progress.status}) to ${dir}\n`);
          if (progress.status === "running") process.stderr.write(`note: the run is still running; ${progress.counts.queued} item(s) have no result yet\n`);
        }
        process.exitCode = EXIT.ok;
      } catch (e) {
        fail(e);
      } finally {
        await state.close();
      }
    });
}
