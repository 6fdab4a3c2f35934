import { fork, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { Log } from "../log.ts";
import { deployment, type Settings } from "../settings.ts";
import type { WorkerTiming } from "../worker/context.ts";
import type { QuotaMode, WorkerConfig } from "./fleet-config.ts";
import type { LocalStack } from "./stack.ts";

const WORKER_FILE = fileURLToPath(new URL("./worker-process.ts", import.meta.url));

export interface FleetOptions {
  stack: LocalStack;
  workers: number;
  settings: Settings;
  /** The endpoint the workers call (the simulator's when no key is set). */
  endpoint: { apiKey: string; baseURL: string };
  log: Log;
  noModel?: boolean;
  timing?: Partial<WorkerTiming>;
  /** How the workers share the account quota (default "shared": through the coordination table). */
  quotaMode?: QuotaMode;
  /** Receives each JSON log line a worker writes (to stderr, then not passed on): tests read what the workers did. */
  onLog?: (line: Record<string, unknown>, worker: number) => void;
  /** The simulated Lambda timeout (default the deployment's 900 s); the fault suite shortens it to reach deadlines. */
  functionTimeoutMs?: number;
  /** TEST ONLY: injected S3/DynamoDB errors, an AwsFaultSpec as JSON (shared/local/aws-faults.ts). */
  awsFaults?: string;
}

export interface Fleet {
  processes: ChildProcess[];
  /** Stops every worker after the batch in hand (SIGTERM), then waits for them. */
  stop(): Promise<void>;
}

/** Hands each JSON line of a worker's log (stderr) to `to`; anything else goes on to this process's stderr. */
function forwardLogLines(stderr: NodeJS.ReadableStream, to: (line: Record<string, unknown>) => void): void {
  createInterface({ input: stderr }).on("line", (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      process.stderr.write(text + "\n");
      return;
    }
    to(line);
  });
}

const queueArn = async (stack: LocalStack, url: string) =>
  (await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes!.QueueArn!;

/**
 * Starts `workers` separate worker processes, as Lambda runs isolated containers: each has its
 * own clients, limiter-free memory and claims, and shares only S3, SQS and the coordination
 * table with the others. Resolves once every process is polling.
 */
export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const [qArn, dArn] = await Promise.all([queueArn(o.stack, o.stack.queueUrl), queueArn(o.stack, o.stack.dlqUrl)]);
  const timing: Partial<WorkerTiming> = { leaseMs: deployment.local.claimLeaseS * 1000, ...o.timing };
  const env = {
    PATH: process.env.PATH,
    DASHSCOPE_API_KEY: o.endpoint.apiKey,
    QWEN_BASE_URL: o.endpoint.baseURL,
    LONGDOC_LOG: o.settings.logLevel,
    // The end-of-job event goes to the emulated topic; a job's webhook is signed with the caller's secret.
    LONGDOC_EVENTS_TOPIC: o.stack.topicArn,
    ...(o.settings.notify.webhookSecret && { LONGDOC_WEBHOOK_SECRET: o.settings.notify.webhookSecret }),
    ...(o.settings.notify.loopbackHttp && { LONGDOC_WEBHOOK_LOOPBACK_HTTP: "1" }),
    ...(o.settings.catalogPath && { LONGDOC_CATALOG: o.settings.catalogPath }),
    // Workers price in the region the edge chose (a simulator standing in for Beijing included).
    LONGDOC_REGION: o.settings.catalog.region,
    ...(o.awsFaults && { LONGDOC_TEST_AWS_FAULTS: o.awsFaults }),
    // Node's on-disk cache of compiled modules, when the caller keeps one: a process then starts in about half the CPU.
    ...(process.env.NODE_COMPILE_CACHE && { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE }),
  };
  const processes = Array.from({ length: Math.max(1, o.workers) }, (_, index) => {
    const config: WorkerConfig = {
      index,
      endpoint: o.stack.endpoint,
      queueUrl: o.stack.queueUrl,
      queueArn: qArn,
      dlqUrl: o.stack.dlqUrl,
      dlqArn: dArn,
      dynamoEndpoint: o.stack.dynamo.endpoint,
      table: o.stack.dynamo.table,
      batchSize: deployment.workerBatchSize,
      pollWaitS: deployment.local.pollWaitS,
      functionTimeoutMs: o.functionTimeoutMs ?? deployment.workerTimeoutS * 1000,
      deadLetters: index === 0,
      noModel: o.noModel ?? false,
      timing,
      quotaMode: o.quotaMode ?? "shared",
      processes: Math.max(1, o.workers),
    };
    const child = fork(WORKER_FILE, [], { env: { ...env, LONGDOC_WORKER_CONFIG: JSON.stringify(config) }, stdio: ["ignore", "inherit", o.onLog ? "pipe" : "inherit", "ipc"] });
    if (o.onLog && child.stderr) forwardLogLines(child.stderr, (line) => o.onLog!(line, index));
    return child;
  });
  await Promise.all(
    processes.map(
      (p, i) =>
        new Promise<void>((resolve, reject) => {
          p.once("message", () => resolve());
          p.once("exit", (code) => reject(new Error(`worker process ${i} exited (${code}) before it started polling`)));
        }),
    ),
  );
  for (const [i, p] of processes.entries()) p.on("exit", (code, signal) => o.log.info({ worker: i, code, signal }, "worker process ended"));
  return {
    processes,
    async stop() {
      await Promise.all(
        processes.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              const force = setTimeout(() => p.kill("SIGKILL"), 15_000);
              p.once("exit", () => {
                clearTimeout(force);
                resolve();
              });
              p.kill("SIGTERM");
            }),
        ),
      );
    },
  };
}
