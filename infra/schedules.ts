import { deployment } from "../shared/settings.ts";
import type { LambdaFunction, Output, ScheduleExpression, Sst } from "./platform.ts";
import { componentNameClashes, pascal, type JobWiring } from "./jobs.ts";

declare const sst: Sst;

/** EventBridge Scheduler's context attribute for the time a run was due (Scheduler user guide, context attributes). */
export const SCHEDULED_TIME = "<aws.scheduler.scheduled-time>";

/**
 * How often EventBridge Scheduler retries a run it could not hand to submit (throttled, Lambda
 * unavailable, a permission missing), with its own backoff, for up to a day (the target's
 * default event age); then the run goes to ScheduleDlq. Scheduler invokes Lambda asynchronously
 * (Lambda DG, "Using Lambda with EventBridge Scheduler"), so an error thrown inside submit is
 * retried by Lambda's asynchronous invocation instead (two more attempts by default) and is not
 * sent here. Safe to retry either way: a run's job id derives from its scheduled time, so a
 * retried tick finds its job.
 */
export const SCHEDULE_RETRIES = 5;

/** The queue that keeps the runs Scheduler gave up on: who, when and why (a dead-letter event). */
export const SCHEDULE_DLQ = "ScheduleDlq";

/** The payload a schedule hands to functions/submit.handler. */
export type ScheduleEvent = {
  job: string;
  /** Filled in by EventBridge Scheduler for each run: the same tick delivered twice gives the same job id. */
  scheduledTime: string;
};

export interface ScheduleWiring {
  job: string;
  component: string;
  schedule: string;
  retries: number;
  /** URL of the queue that keeps this schedule's undelivered runs. */
  deadLetterQueue: Output<string>;
}

/**
 * One EventBridge Scheduler schedule (SST CronV2; `Cron` is deprecated) per job file with a
 * `schedule:`, invoking submit with `{ job: "<name>", scheduledTime }`. Expressions pass through
 * as written (`cron(...)`, `rate(...)`), evaluated in UTC. Each retries SCHEDULE_RETRIES times,
 * then sends the run to one shared standard queue, ScheduleDlq (Scheduler takes no FIFO queue),
 * kept as long as the tasks' dead letters. Nothing is created when no job has a schedule.
 */
export function createSchedules(jobs: JobWiring[], submit: LambdaFunction): ScheduleWiring[] {
  const scheduled = jobs.filter((j) => j.schedule !== undefined);
  if (scheduled.length === 0) return [];
  // readJobs refuses these already; callers that build the list by hand get the same answer.
  const clashes = componentNameClashes(scheduled);
  if (clashes.length > 0) throw new Error(clashes.join("\n"));

  const dlq = new sst.aws.Queue(SCHEDULE_DLQ, {
    transform: { queue: { messageRetentionSeconds: deployment.dlqRetentionS } },
  });
  return scheduled.map((job) => {
    const component = `Schedule${pascal(job.name)}`;
    const event: ScheduleEvent = { job: job.name, scheduledTime: SCHEDULED_TIME };
    new sst.aws.CronV2(component, {
      function: submit,
      schedule: job.schedule as ScheduleExpression,
      event,
      retries: SCHEDULE_RETRIES,
      dlq: dlq.arn,
    });
    return { job: job.name, component, schedule: job.schedule!, retries: SCHEDULE_RETRIES, deadLetterQueue: dlq.url };
  });
}
