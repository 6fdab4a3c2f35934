import { fork, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { Log } from "../log.ts";
import { deployment, type Settings } from "../settings.ts";
import type { WorkerTiming } from "../worker/context.ts";
import type { QuotaMode, WorkerConfig } from "./fleet-config.ts";
import { heapLimitMb, residentMb } from "./memory-cap.ts";
import type { LocalStack } from "./stack.ts";
import { workerEntry } from "./worker-bundle.ts";

// Beside this file: worker-process.ts in the sources, worker-process.js in the compiled package.
const WORKER_FILE = fileURLToPath(new URL(`./worker-process${import.meta.url.endsWith(".js") ? ".js" : ".ts"}`, import.meta.url));

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
  /** Each worker's memory in MB, as a Lambda's (default the deployment's): heap limit, and a kill above it where /proc tells. */
  memoryMb?: number;
  /** A dead worker was replaced (or could not be): the run tells the user. */
  onReplaced?: (r: WorkerReplaced) => void;
}

/** A worker process that died while the fleet was running, and the one started in its place. */
export interface WorkerReplaced {
  index: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the fleet killed it for going over its memory cap. */
  overMemory: boolean;
  /** The new process's pid, or null when the fleet gave up replacing (see Fleet.failure). */
  newPid: number | null;
}

export interface Fleet {
  /** The live processes, one per worker slot; a dead worker's slot holds its replacement. */
  processes: ChildProcess[];
  /** Set when workers keep dying before they start polling: the fleet stopped replacing them. */
  failure(): Error | undefined;
  /** Stops every worker after the batch in hand (SIGTERM), then waits for them. */
  stop(): Promise<void>;
}

/** Replacements of one slot that die before they poll, in a row, before the fleet gives up. */
/** A worker that dies this soon after it started counts as one that could not start. */
const STARTUP_GRACE_MS = 5_000;
const MAX_STARTUP_DEATHS = 3;

/** How a replaced worker's death reads in a message. */
export function describeReplacement(r: WorkerReplaced, memoryMb: number): string {
  const how = r.overMemory ? `went over its ${memoryMb} MB memory cap and was stopped` : r.signal ? `was killed (${r.signal})` : `exited (code ${r.code})`;
  return r.newPid === null
    ? `worker process ${r.index} (pid ${r.pid}) ${how}; not replaced: workers keep dying as they start`
    : `worker process ${r.index} (pid ${r.pid}) ${how}; started pid ${r.newPid} in its place, as Lambda starts a new container (an item it held is taken over once its claim expires)`;
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
  const [qArn, dArn, fArn] = await Promise.all([queueArn(o.stack, o.stack.queueUrl), queueArn(o.stack, o.stack.dlqUrl), queueArn(o.stack, o.stack.finalizeUrl)]);
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
  const memoryMb = o.memoryMb ?? deployment.workerMemoryMb;
  const count = Math.max(1, o.workers);
  const configOf = (index: number): WorkerConfig => ({
    index,
    endpoint: o.stack.endpoint,
    queueUrl: o.stack.queueUrl,
    queueArn: qArn,
    dlqUrl: o.stack.dlqUrl,
    dlqArn: dArn,
    finalizeUrl: o.stack.finalizeUrl,
    finalizeArn: fArn,
    dynamoEndpoint: o.stack.dynamo.endpoint,
    table: o.stack.dynamo.table,
    batchSize: deployment.workerBatchSize,
    pollWaitS: deployment.local.pollWaitS,
    functionTimeoutMs: o.functionTimeoutMs ?? deployment.workerTimeoutS * 1000,
    deadLetters: index === 0,
    noModel: o.noModel ?? false,
    timing,
    quotaMode: o.quotaMode ?? "shared",
    processes: count,
  });
  const entry = await workerEntry(WORKER_FILE);
  const spawnWorker = (index: number): ChildProcess => {
    const child = fork(entry, [], {
      env: { ...env, LONGDOC_WORKER_CONFIG: JSON.stringify(configOf(index)) },
      execArgv: [...process.execArgv, `--max-old-space-size=${heapLimitMb(memoryMb)}`],
      stdio: ["ignore", "inherit", o.onLog ? "pipe" : "inherit", "ipc"],
    });
    if (o.onLog && child.stderr) forwardLogLines(child.stderr, (line) => o.onLog!(line, index));
    return child;
  };
  const ready = (p: ChildProcess, i: number) =>
    new Promise<void>((resolve, reject) => {
      p.once("message", () => resolve());
      p.once("exit", (code, signal) => reject(new Error(`worker process ${i} exited (${signal ?? code}) before it started polling`)));
    });

  const processes = Array.from({ length: count }, (_, index) => spawnWorker(index));
  await Promise.all(processes.map(ready)).catch((e: unknown) => {
    for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    throw e;
  });

  let stopping = false;
  let failure: Error | undefined;
  const overMemory = new Set<ChildProcess>();
  const startupDeaths = new Array<number>(count).fill(0);
  // As Lambda starts a new container when one dies, a dead worker's slot gets a new process.
  const supervise = (p: ChildProcess, index: number, wasReady: Promise<boolean>) => {
    const spawnedAt = Date.now();
    p.once("exit", (code, signal) => {
      o.log.info({ worker: index, code, signal }, "worker process ended");
      if (stopping || processes[index] !== p) return;
      void wasReady.then((polled) => {
        if (stopping) return;
        // Dying as it starts (before it polls, or within moments of it): a set-up that cannot run.
        const early = !polled || Date.now() - spawnedAt < STARTUP_GRACE_MS;
        startupDeaths[index] = early ? startupDeaths[index]! + 1 : 0;
        const report: WorkerReplaced = { index, pid: p.pid!, code, signal, overMemory: overMemory.has(p), newPid: null };
        if (startupDeaths[index]! >= MAX_STARTUP_DEATHS) {
          failure ??= new Error(`worker process ${index} died ${MAX_STARTUP_DEATHS} times in a row before it could poll (last: ${signal ?? `exit code ${code}`})`);
          o.log.error({ worker: index, code, signal }, "worker processes keep dying as they start; not replaced");
          o.onReplaced?.(report);
          return;
        }
        const next = spawnWorker(index);
        processes[index] = next;
        supervise(next, index, ready(next, index).then(() => true, () => false));
        report.newPid = next.pid ?? null;
        o.log.warn({ worker: index, pid: p.pid, code, signal, newPid: next.pid }, "worker process died; replaced");
        o.onReplaced?.(report);
      });
    });
  };
  for (const [index, p] of processes.entries()) supervise(p, index, Promise.resolve(true));

  // A Lambda over its memory is stopped; so is a worker process here, where /proc shows its size.
  const memoryWatch = setInterval(() => {
    for (const p of processes) {
      if (p.exitCode !== null || p.signalCode !== null || overMemory.has(p)) continue;
      void residentMb(p.pid!).then((mb) => {
        if (mb !== null && mb > memoryMb && p.exitCode === null && p.signalCode === null) {
          overMemory.add(p);
          o.log.error({ pid: p.pid, residentMb: Math.round(mb), memoryMb }, "worker process over its memory cap; stopped");
          p.kill("SIGKILL");
        }
      });
    }
  }, 1000);
  memoryWatch.unref();

  return {
    processes,
    failure: () => failure,
    async stop() {
      stopping = true;
      clearInterval(memoryWatch);
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
