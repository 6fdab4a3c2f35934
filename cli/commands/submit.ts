import type { Command } from "commander";
import { submitToDeployed } from "../stack.ts";
import { EXIT, fail } from "../exit.ts";
import { human, type Edge } from "../edge.ts";

export function registerSubmit(program: Command, edge: Edge): void {
  program
    .command("submit")
    .description("submit a job to the deployed stack: uploads its path: documents, lists its s3: sources, queues one task per item")
    .argument("<job.yaml>", "the job file, or an OpenAI Batch input file (.jsonl): one item per line")
    .option("--stage <name>", "the deployed stage whose outputs to use (default: the only one deployed from this folder)")
    .option("--json", "print {jobId, bucket, queueUrl, items, ...} as JSON on the last line")
    .action(async (jobFile: string, flags: { json?: boolean; stage?: string }) => {
      try {
        const { job, coords, uploaded, listed } = await submitToDeployed(jobFile, edge.settings(), edge.env, process.cwd(), flags.stage);
        const run = `s3://${coords.bucket}/runs/${job.jobId}/`;
        human(flags.json).write(
          [
            `submitted job ${job.jobId}: ${job.items.length} item(s), model ${job.model}`,
            job.batch
              ? `  requests:  ${job.batch.requests} line(s) of ${job.batch.file} written to ${`s3://${coords.bucket}/runs/${job.jobId}/requests/`}`
              : `  documents: ${uploaded} uploaded to s3://${coords.bucket}/inputs/, ${listed} listed from s3: sources`,
            `  run:       ${run} (bucket from ${coords.from.bucket})`,
            `  queue:     ${coords.queueUrl} (from ${coords.from.queueUrl})`,
            `follow it:   npx longdoc status ${job.jobId} --deployed${stageFlag(flags.stage)} --watch (or: aws s3 cp ${run}manifest.json -; status is "running" until every item has a result)`,
            `results:     npx longdoc results ${job.jobId} --deployed${stageFlag(flags.stage)} (or: aws s3 cp --recursive ${run} out/${job.jobId}/)`,
            `cancel it:   npx longdoc cancel ${job.jobId} --deployed${stageFlag(flags.stage)}`,
          ].join("\n") + "\n",
        );
        if (flags.json) {
          process.stdout.write(
            JSON.stringify({ jobId: job.jobId, job: job.name, model: job.model, bucket: coords.bucket, queueUrl: coords.queueUrl, items: job.items.length, uploaded, listed }) + "\n",
          );
        }
        process.exitCode = EXIT.ok;
      } catch (e) {
        fail(e);
      }
    });
}

const stageFlag = (stage: string | undefined) => (stage ? ` --stage ${stage}` : "");
