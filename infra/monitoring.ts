import { METRIC, METRICS_NAMESPACE, SERVICE } from "../shared/worker/metrics.ts";
import type { Input, Output, Queue, SnsTopic, Sst } from "./platform.ts";

declare const sst: Sst;
/** SST's global app (name, stage) inside `sst.config.ts`; absent under the tests' stand-in. */
declare const $app: { name: string; stage: string } | undefined;

/** `<app>-<stage>` (e.g. longdoc-prod), so each stage has its own dashboard; "longdoc" outside SST. */
export const dashboardName = (): string => (typeof $app === "undefined" || !$app ? "longdoc" : `${$app.name}-${$app.stage}`);

/**
 * The slice of Pulumi's AWS provider used here (SST exposes it as the global `aws`), read from
 * @pulumi/aws `cloudwatch/dashboard.ts` (`dashboardName`, `dashboardBody`) and
 * `cloudwatch/metricAlarm.ts` (the arguments below; `metricQueries` as in `MetricAlarmMetricQuery`).
 */
export interface DashboardArgs {
  /** Required: Pulumi does not name dashboards itself. */
  dashboardName: Input<string>;
  dashboardBody: Input<string>;
}

export interface MetricQuery {
  id: string;
  expression?: string;
  label?: string;
  period?: number;
  returnData?: boolean;
  metricStat?: { metric: { namespace: string; metricName: string; dimensions?: Record<string, Input<string>> }; period: number; stat: string };
}

export interface MetricAlarmArgs {
  alarmDescription?: string;
  comparisonOperator: "GreaterThanThreshold" | "GreaterThanOrEqualToThreshold" | "LessThanThreshold" | "LessThanOrEqualToThreshold";
  evaluationPeriods: number;
  datapointsToAlarm?: number;
  threshold: number;
  treatMissingData?: "missing" | "ignore" | "breaching" | "notBreaching";
  alarmActions?: Input<string>[];
  okActions?: Input<string>[];
  // A single metric...
  namespace?: string;
  metricName?: string;
  dimensions?: Record<string, Input<string>>;
  statistic?: "SampleCount" | "Average" | "Sum" | "Minimum" | "Maximum";
  period?: number;
  // ...or metric math and Metrics Insights queries.
  metricQueries?: MetricQuery[];
}

export interface MetricAlarm {
  readonly arn: Output<string>;
}

declare const aws: {
  cloudwatch: {
    Dashboard: new (name: string, args: DashboardArgs) => unknown;
    MetricAlarm: new (name: string, args: MetricAlarmArgs) => MetricAlarm;
  };
};

/** When the alarms fire. Spend is in the currency of the jobs' region (USD in Singapore). */
export interface AlarmThresholds {
  /** Alarm when any message waits in the dead-letter queue: each is an item that used up its deliveries. */
  dlqMessages: number;
  /** Share of model calls refused with 429 over five minutes; pacing keeps it near 0. */
  rateLimitedShare: number;
  /** Spend of the costliest job over five minutes. */
  jobSpendPer5Minutes: number;
}

export const ALARM_THRESHOLDS: AlarmThresholds = { dlqMessages: 0, rateLimitedShare: 0.2, jobSpendPer5Minutes: 10 };

const FIVE_MINUTES = 300;

/** `fn` of a value known now (a string, in tests) or at deploy time (an Output). */
const derive = <T>(v: Input<string>, fn: (s: string) => T): Input<T> => (typeof v === "string" ? fn(v) : (v as Output<string>).apply(fn));

/** An SQS ARN is arn:aws:sqs:<region>:<account>:<name>. */
const sqsArnParts = (arn: string) => {
  const [, , , region, , name] = arn.split(":");
  return { region: region!, name: name! };
};

const worker = (metricName: string, extra: Record<string, string> = {}) => ({ namespace: METRICS_NAMESPACE, metricName, dimensions: { Service: SERVICE, ...extra } });

/**
 * Watching the deployed stack: an `Alarms` SNS topic (subscribe an e-mail or a pager to it), alarms
 * on the dead-letter queue's depth, on the share of 429s and on a job's spend rate, and a
 * CloudWatch dashboard of the worker's EMF metrics (shared/worker/metrics.ts) and the DLQ.
 */
export function createMonitoring(
  d: { dlq: Queue; finalizeDlq?: Queue },
  t: AlarmThresholds = ALARM_THRESHOLDS,
): { topic: SnsTopic; dashboard: unknown; alarms: Record<"deadLetters" | "rateLimited" | "jobSpend", MetricAlarm> & { finalizeDeadLetters?: MetricAlarm } } {
  const topic = new sst.aws.SnsTopic("Alarms");
  const notify = { alarmActions: [topic.arn], okActions: [topic.arn] };
  const queueDepth = (name: string, queue: Queue, description: string) =>
    new aws.cloudwatch.MetricAlarm(name, {
      alarmDescription: description,
      namespace: "AWS/SQS",
      metricName: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: derive(queue.arn, (a) => sqsArnParts(a).name) },
      statistic: "Maximum",
      period: FIVE_MINUTES,
      evaluationPeriods: 1,
      comparisonOperator: "GreaterThanThreshold",
      threshold: t.dlqMessages,
      treatMissingData: "notBreaching",
      ...notify,
    });

  const deadLetters = queueDepth("DeadLettersAlarm", d.dlq, "longdoc: tasks reached the dead-letter queue (items that used up their deliveries; the recorder marks them failed)");
  const finalizeDeadLetters = d.finalizeDlq
    ? queueDepth("FinalizeDeadLettersAlarm", d.finalizeDlq, "longdoc: a job's finalizer used up its deliveries: its manifest, report or end-of-job event may be missing")
    : undefined;

  const rateLimited = new aws.cloudwatch.MetricAlarm("RateLimitedAlarm", {
    alarmDescription: `longdoc: more than ${t.rateLimitedShare * 100}% of model calls were refused with 429 in two of three 5-minute periods`,
    metricQueries: [
      { id: "calls", metricStat: { metric: worker(METRIC.modelCalls), period: FIVE_MINUTES, stat: "Sum" }, returnData: false },
      { id: "limited", metricStat: { metric: worker(METRIC.rateLimited), period: FIVE_MINUTES, stat: "Sum" }, returnData: false },
      { id: "share", expression: "IF(calls > 0, limited / calls, 0)", label: "429 share", returnData: true },
    ],
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    comparisonOperator: "GreaterThanThreshold",
    threshold: t.rateLimitedShare,
    treatMissingData: "notBreaching",
    ...notify,
  });

  // Metrics Insights: the costliest job's spend in each period, whatever jobs run.
  const jobSpend = new aws.cloudwatch.MetricAlarm("JobSpendAlarm", {
    alarmDescription: `longdoc: one job spent more than ${t.jobSpendPer5Minutes} in 5 minutes`,
    metricQueries: [
      {
        id: "top",
        expression: `SELECT SUM(${METRIC.spend}) FROM SCHEMA("${METRICS_NAMESPACE}", JobId, Service) GROUP BY JobId ORDER BY SUM() DESC LIMIT 1`,
        label: "spend of the costliest job",
        period: FIVE_MINUTES,
        returnData: true,
      },
    ],
    evaluationPeriods: 1,
    comparisonOperator: "GreaterThanThreshold",
    threshold: t.jobSpendPer5Minutes,
    treatMissingData: "notBreaching",
    ...notify,
  });

  const dashboard = new aws.cloudwatch.Dashboard("Dashboard", {
    dashboardName: dashboardName(),
    dashboardBody: derive(d.dlq.arn, (arn) => JSON.stringify(dashboardBody(sqsArnParts(arn)))),
  });

  return { topic, dashboard, alarms: { deadLetters, rateLimited, jobSpend, ...(finalizeDeadLetters ? { finalizeDeadLetters } : {}) } };
}

/** The dashboard's widgets (CloudWatch dashboard body structure): the worker's metrics by minute, and the DLQ. */
export function dashboardBody(dlq: { region: string; name: string }) {
  const m = (name: string, extra: string[] = [], label?: string) => [METRICS_NAMESPACE, name, "Service", SERVICE, ...extra, ...(label ? [{ label }] : [])];
  const widget = (title: string, metrics: unknown[], k: number, o: { stat?: string; period?: number } = {}) => ({
    type: "metric",
    x: (k % 2) * 12,
    y: Math.floor(k / 2) * 6,
    width: 12,
    height: 6,
    properties: { title, region: dlq.region, view: "timeSeries", stacked: false, stat: o.stat ?? "Sum", period: o.period ?? 60, metrics },
  });
  const widgets = [
    widget("Items finished by status", ["succeeded", "failed", "skipped"].map((s) => m(METRIC.itemsFinished, ["Status", s], s)), 0),
    widget("Model calls and 429s", [m(METRIC.modelCalls), m(METRIC.rateLimited, [], "429s"), m(METRIC.retries)], 1),
    widget("Tokens", [m(METRIC.inputTokens), m(METRIC.outputTokens)], 2),
    widget("Spend, all jobs and per job", [m(METRIC.spend, [], "all jobs"), [{ expression: `SEARCH('{${METRICS_NAMESPACE},JobId,Service} MetricName="${METRIC.spend}"', 'Sum', 60)`, id: "perJob", label: "" }]], 3),
    widget("Deliveries, quota waits and infrastructure faults", [m(METRIC.deliveries), m(METRIC.quotaWaits), m(METRIC.infraFaults)], 4),
    widget("Dead-letter queue depth", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq.name]], 5, { stat: "Maximum", period: FIVE_MINUTES }),
  ];
  return { widgets };
}
