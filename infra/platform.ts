/**
 * The slice of SST v4's platform that infra/ uses, typed by hand.
 *
 * SST's real types live in `.sst/platform/` and only appear after `sst install`, which cannot
 * run on every machine (it downloads Pulumi and the AWS provider). These declarations let
 * `tsc` check infra/ everywhere. Each name below was read from SST v4.17
 * (anomalyco/sst `platform/src/components/`):
 *
 * - `aws/queue.ts`: `QueueArgs.visibilityTimeout`, `dlq: {queue, retry}`, `transform.queue`;
 *   `subscribe(subscriber, {batch: {size, window, partialResponses}, transform: {eventSourceMapping, function}})`
 * - `aws/function.ts`: `handler`, `runtime` ("nodejs24.x" default), `timeout`, `memory`, `link`,
 *   `environment`, `permissions: [{actions, resources}]`, `copyFiles: [{from, to}]`
 * - `aws/cron-v2.ts`: `function` (`job` is deprecated), `schedule`, `event`, `timezone`, `enabled`,
 *   `retries` (the target's RetryPolicy, 0-185, default 0), `dlq` (a queue ARN: the target's DeadLetterConfig)
 * - `aws/bucket.ts`: `notify({notifications: [{name, function, events, filterPrefix, filterSuffix}]})`
 * - `secret.ts`: `new sst.Secret(name, placeholder?)`
 * - `duration.ts`, `size.ts`: the template-literal duration and size types
 *
 * The infra modules declare `sst` with these types at module scope (`declare const sst: Sst`),
 * which shadows SST's global typing without conflicting with it once `.sst/platform` exists.
 * At run time `sst` is the global that SST (or the test's fake) provides.
 */

/** A value now or later (Pulumi's `Output`); infra/ only passes these along. */
export interface Output<T> {
  apply<U>(fn: (value: T) => U): Output<U>;
}
export type Input<T> = T | Output<T>;

export type DurationMinutes = `${number} ${"second" | "seconds" | "minute" | "minutes"}`;
export type DurationHours = `${number} ${"second" | "seconds" | "minute" | "minutes" | "hour" | "hours"}`;
export type Size = `${number} ${"MB" | "GB"}`;

export interface FunctionPermission {
  actions: string[];
  resources: Input<string>[];
}

export interface FunctionArgs {
  handler: string;
  description?: string;
  runtime?: "nodejs22.x" | "nodejs24.x";
  timeout?: DurationMinutes;
  memory?: Size;
  link?: unknown[];
  environment?: Record<string, Input<string>>;
  permissions?: FunctionPermission[];
  copyFiles?: { from: string; to?: string }[];
  /**
   * `install`: packages shipped in the function's node_modules/ instead of bundled; `splitting`:
   * esbuild's code splitting, so what a dynamic import() loads is a chunk read on first use (aws/function.ts).
   */
  nodejs?: { install?: string[]; splitting?: boolean };
}

export interface LambdaFunction {
  readonly name: Output<string>;
  readonly arn: Output<string>;
}

export interface Bucket {
  readonly name: Output<string>;
  readonly arn: Output<string>;
  notify(args: BucketNotificationsArgs): unknown;
}

export type BucketEvent = "s3:ObjectCreated:*" | "s3:ObjectCreated:Put" | "s3:ObjectCreated:Post" | "s3:ObjectCreated:Copy" | "s3:ObjectCreated:CompleteMultipartUpload";

export interface BucketNotificationsArgs {
  notifications: {
    name: string;
    function?: Input<string> | FunctionArgs;
    events?: BucketEvent[];
    filterPrefix?: string;
    filterSuffix?: string;
  }[];
}

export interface QueueArgs {
  visibilityTimeout?: DurationHours;
  dlq?: Input<string> | { queue: Input<string>; retry: number };
  transform?: { queue?: { messageRetentionSeconds?: number } };
}

export interface QueueSubscriberArgs {
  batch?: { size?: number; window?: DurationMinutes; partialResponses?: boolean };
  transform?: {
    /** Merged shallowly into Pulumi's `aws.lambda.EventSourceMappingArgs` (component.ts `transform`). */
    eventSourceMapping?: { scalingConfig?: { maximumConcurrency?: number } };
  };
}

export interface Queue {
  readonly arn: Output<string>;
  readonly url: Output<string>;
  subscribe(subscriber: string | FunctionArgs, args?: QueueSubscriberArgs): unknown;
}

export type ScheduleExpression = `rate(${string})` | `cron(${string})` | `at(${string})`;

export interface CronV2Args {
  function: Input<string> | FunctionArgs | LambdaFunction;
  schedule: ScheduleExpression;
  /** Passed to the function as its event (the Scheduler target's `input`). */
  event?: Record<string, Input<string>>;
  timezone?: string;
  enabled?: boolean;
  /** The target's RetryPolicy.MaximumRetryAttempts: 0-185, SST's default 0. */
  retries?: number;
  /** ARN of a standard SQS queue: the target's DeadLetterConfig; SST grants the schedule's role sqs:SendMessage on it. */
  dlq?: Input<string>;
}

/** `aws/sns-topic.ts`: `new sst.aws.SnsTopic(name, {fifo?})`; `.arn`, `.name`. */
export interface SnsTopic {
  readonly arn: Output<string>;
  readonly name: Output<string>;
}

export interface Secret {
  readonly name: Output<string>;
  readonly value: Output<string>;
}

export interface Sst {
  Secret: new (name: string, placeholder?: string) => Secret;
  aws: {
    Bucket: new (name: string, args?: Record<string, never>) => Bucket;
    Queue: new (name: string, args?: QueueArgs) => Queue;
    Function: new (name: string, args: FunctionArgs) => LambdaFunction;
    CronV2: new (name: string, args: CronV2Args) => unknown;
    SnsTopic: new (name: string, args?: { fifo?: boolean }) => SnsTopic;
  };
}
