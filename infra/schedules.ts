import type { LambdaFunction, ScheduleExpression, Sst } from "./platform.ts";
import { pascal, type JobWiring } from "./jobs.ts";

declare const sst: Sst;

/** EventBridge Scheduler's context attribute for the time a run was due (Scheduler user guide, context attributes). */
export const SCHEDULED_TIME = "<aws.scheduler.scheduled-time>";

/** The payload a schedule hands to functions/submit.handler. */
export interface ScheduleEvent {
  job: string;
  /** Filled in by EventBridge Scheduler for each run: the same tick delivered twice gives the same job id. */
  scheduledTime: string;
}

/**
 * One EventBridge Scheduler schedule (SST CronV2; `Cron` is deprecated) per job file with a
 * `schedule:`, invoking submit with `{ job: "<name>" }`. Expressions pass through as written
 * (`cron(...)`, `rate(...)`, `at(...)`), evaluated in UTC.
 */
export function createSchedules(jobs: JobWiring[], submit: LambdaFunction): { job: string; component: string; schedule: string }[] {
  const seen = new Map<string, string>();
  return jobs.flatMap((job) => {
    if (job.schedule === undefined) return [];
    const component = `Schedule${pascal(job.name)}`;
    const clash = seen.get(component);
    if (clash) throw new Error(`${job.file}: its schedule would share the component name ${component} with jobs/${clash}.yaml; rename one job`);
    seen.set(component, job.name);
    const event: ScheduleEvent = { job: job.name, scheduledTime: SCHEDULED_TIME };
    new sst.aws.CronV2(component, {
      function: submit,
      schedule: job.schedule as ScheduleExpression,
      event,
    });
    return [{ job: job.name, component, schedule: job.schedule }];
  });
}
