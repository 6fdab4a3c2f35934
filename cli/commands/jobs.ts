import { Option, type Command } from "commander";
import { stateOwner } from "../../shared/local/owner.ts";
import { formatCost } from "../../shared/model/catalog.ts";
import { listJobs, type JobListing } from "../../shared/run/jobs.ts";
import { deployedStoreReader, localStateReader } from "../readers.ts";
import { EXIT, fail } from "../exit.ts";
import { renderTable } from "../table.ts";
import { human, type Edge } from "../edge.ts";

interface JobsFlags {
  json?: boolean;
  state: string;
  deployed?: boolean;
}

export function registerJobs(program: Command, edge: Edge): void {
  program
    .command("jobs")
    .description("every job of the local state (or the deployed stack with --deployed), newest first: status, counts, cost and times")
    .option("--json", 'print one JSON object { "jobs": [...] } on stdout')
    .option("--state <dir>", "where the emulator keeps its state", ".longdoc/state")
    .addOption(new Option("--deployed", "list the jobs in the deployed stack's bucket (.sst/outputs.json or LONGDOC_BUCKET)").conflicts("state"))
    .action(async (flags: JobsFlags) => {
      const reader = flags.deployed ? deployedStoreReader(edge.env) : localStateReader(flags.state);
      try {
        let jobs = await reader.read((store) => listJobs(store));
        // A local job still `running` with no live process on its state was interrupted (as `status` says).
        if (!flags.deployed && stateOwner(flags.state) === null) jobs = jobs.map((j) => (j.status === "running" ? { ...j, status: "interrupted" } : j));
        human(flags.json).write(renderJobs(jobs) + "\n");
        if (flags.json) process.stdout.write(JSON.stringify({ jobs }) + "\n");
        process.exitCode = EXIT.ok;
      } catch (e) {
        fail(e);
      } finally {
        await reader.close();
      }
    });
}

export function renderJobs(jobs: JobListing[]): string {
  if (jobs.length === 0) return "no jobs yet";
  const rows = jobs.map((j) => [
    j.jobId,
    j.job,
    j.status,
    `${j.counts.succeeded}/${j.counts.failed}/${j.counts.skipped}/${j.counts.total}`,
    formatCost(j.cost, j.currency),
    j.startedAt,
    j.finishedAt ?? "-",
  ]);
  return `${renderTable(["job id", "name", "status", "ok/failed/skipped/total", "cost", "started", "finished"], rows)}\n${jobs.length} job(s), newest first`;
}
