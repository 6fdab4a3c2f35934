import { createBatchPoller } from "./batch-poll.ts";
import { createCoordTable } from "./coord.ts";
import { createEvents } from "./events.ts";
import { createFinalize } from "./finalize.ts";
import { readJobs, sourceReadPermissions } from "./jobs.ts";
import { createMonitoring } from "./monitoring.ts";
import { createQueues } from "./queue.ts";
import { createSchedules } from "./schedules.ts";
import { createSecrets } from "./secrets.ts";
import { createStorage } from "./storage.ts";
import { createSubmit } from "./submit.ts";
import { createSubmitFailures, routeSubmitFailures } from "./submit-failures.ts";
import { createTriggers } from "./triggers.ts";

export interface DeployOptions {
  /** Folder of job files; SST runs `run()` from the app root, so "jobs" is the repo's. */
  jobsDir?: string;
  /** Deploy-time environment (SST loads `.env`); only QWEN_BASE_URL is passed on. */
  env?: Record<string, string | undefined>;
}

/** Everything the app deploys; returns what `sst deploy` prints and writes to `.sst/outputs.json`. */
export function deploy(o: DeployOptions = {}) {
  const jobs = readJobs(o.jobsDir ?? "jobs");
  const permissions = sourceReadPermissions(jobs);
  const baseURL = o.env?.QWEN_BASE_URL?.trim();
  const environment: Record<string, string> = baseURL ? { QWEN_BASE_URL: baseURL } : {};

  const { runs } = createStorage();
  const { apiKey } = createSecrets();
  const { coord } = createCoordTable();
  const events = createEvents();
  const { finalize, finalizeDlq } = createFinalize({ runs, coord, events });
  const { tasks, dlq } = createQueues({ runs, apiKey, coord, environment, permissions, events, finalize });
  const submitFailures = createSubmitFailures();
  const submit = createSubmit({ runs, tasks, coord, permissions, failures: submitFailures });
  routeSubmitFailures(submit, submitFailures);
  const schedules = createSchedules(jobs, submit);
  const uploads = createTriggers(jobs, runs, submit);
  const monitoring = createMonitoring({ dlq, finalizeDlq });
  const batchPoll = createBatchPoller({ runs, tasks, apiKey, coord, environment });

  return {
    bucket: runs.name,
    queue: tasks.url,
    deadLetterQueue: dlq.url,
    finalizeQueue: finalize.url,
    finalizeDeadLetters: finalizeDlq.url,
    coordinationTable: coord.name,
    jobEventsTopic: events.topic.arn,
    alarmsTopic: monitoring.topic.arn,
    submitFunction: submit.name,
    submitFailures: submitFailures.url,
    schedules,
    uploads,
    batchPollSchedule: batchPoll.schedule,
  };
}
