import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { createMemoryCoordinator, type MemoryCoordinator } from "../../shared/local/memory-coord.ts";
import { parseJobText } from "../../shared/job/load.ts";
import { s3Uri, type JobRecord } from "../../shared/job/record.ts";
import { silentLog } from "../../shared/log.ts";
import { getModel, loadCatalog } from "../../shared/model/catalog.ts";
import type { ChatRequest, ChatResult, ModelClient, StreamProgress } from "../../shared/model/client.ts";
import type { ItemResult, Manifest } from "../../shared/run/manifest.ts";
import type { TaskMessage } from "../../shared/run/queue.ts";
import { keys, ObjectStore } from "../../shared/run/store.ts";
import { submitJob } from "../../shared/submit/submit.ts";
import type { AttemptRecord } from "../../shared/run/attempt-record.ts";
import type { WorkerDeps } from "../../shared/worker/context.ts";
import { defaultTiming } from "../../shared/worker/deps.ts";
import { runTask, type TaskOutcome } from "../../shared/worker/lifecycle.ts";
import { ReturnToQueue } from "../../shared/worker/records.ts";
import { memoryS3 } from "./memory-s3.ts";

const BUCKET = "longdoc-runs";

/** What the scripted model is asked to do on one call: answer (with usage), or throw. */
export type ModelStep = (req: ChatRequest, n: number) => ChatResult | Error;

/**
 * A model client whose calls follow a script, counted: the n-th call (1-based) gets `script(req, n)`.
 * It streams its answer in one chunk, as the provider's last chunk would.
 */
export function scriptedModel(script: ModelStep = () => answer("ok")): ModelClient & { calls: ChatRequest[] } {
  const calls: ChatRequest[] = [];
  return {
    calls,
    async chat(req, opts) {
      calls.push(req);
      const out = script(req, calls.length);
      if (out instanceof Error) throw out;
      const chunk: StreamProgress = { requestId: out.requestId, reasoning: out.reasoning, answer: out.answer, finishReason: out.finishReason, firstChunkAt: Date.now() };
      opts?.onChunk?.(chunk);
      return out;
    },
  };
}

export const answer = (text: string, usage = { inputTokens: 1_000, outputTokens: 50 }): ChatResult => ({
  cacheType: "implicit",
  reasoning: "",
  answer: text,
  finishReason: "stop",
  usage: { ...usage, reasoningTokens: 0, cachedTokens: 0 },
  requestId: `req-${Math.random().toString(36).slice(2, 10)}`,
});

/**
 * One job submitted into memory (S3, the coordination store, a queue that keeps what it is sent)
 * and a worker to deliver its tasks to: the whole lifecycle of runTask, with no emulator and no
 * HTTP. `deliver` runs one task as a queue delivery would and says how it ended: a terminal
 * outcome, or the ReturnToQueue it threw.
 */
export async function memoryJob(o: { yaml: string; documents: Record<string, string>; model: ModelClient; coord?: MemoryCoordinator; maxAttempts?: number }) {
  const s3 = memoryS3([BUCKET]);
  const store = new ObjectStore(s3, BUCKET);
  const coord = o.coord ?? createMemoryCoordinator();
  const catalog = loadCatalog();
  const queued: TaskMessage[] = [];
  const sqs = {
    async send(command: unknown) {
      if (!(command instanceof SendMessageBatchCommand)) throw new Error(`the test queue takes SendMessageBatch only, not ${(command as object).constructor.name}`);
      for (const e of command.input.Entries ?? []) queued.push(JSON.parse(e.MessageBody!) as TaskMessage);
      return { Successful: [], Failed: [] };
    },
  } as unknown as SQSClient;
  const documents = [];
  for (const [name, text] of Object.entries(o.documents)) {
    const key = `inputs/test/${name}`;
    await store.put(key, text, "text/markdown");
    documents.push({ source: name, uri: s3Uri(BUCKET, key) });
  }
  const spec = parseJobText(o.yaml, "job.yaml");
  const job: JobRecord = await submitJob(
    { store, sqs, queueUrl: "memory://tasks", maxReceives: 10, coord, ...(o.maxAttempts !== undefined && { maxAttempts: o.maxAttempts }) },
    { spec, model: getModel(catalog, spec.model), documents, outputSchema: null },
  );
  const deps: WorkerDeps = {
    s3,
    model: o.model,
    catalog,
    coord,
    owner: "worker-a",
    log: silentLog,
    timing: { ...defaultTiming, leaseMs: 60_000, backoffBaseMs: 10, backoffCapMs: 20 },
  };
  const receives = new Map<string, number>();

  async function deliver(task: TaskMessage, as: Partial<WorkerDeps> = {}): Promise<TaskOutcome | ReturnToQueue> {
    const n = (receives.get(task.itemId) ?? 0) + 1;
    receives.set(task.itemId, n);
    try {
      return await runTask({ ...deps, ...as }, task, { receiveCount: n, deadlineAt: Date.now() + 600_000 });
    } catch (e) {
      if (e instanceof ReturnToQueue) return e;
      throw e;
    }
  }

  return {
    job,
    store,
    coord,
    s3,
    tasks: queued,
    deliver,
    result: (itemId: string) => store.getJson<ItemResult>(keys.item(job.jobId, itemId, "result.json")),
    attempt: (itemId: string, n: number) => store.getJson<AttemptRecord>(keys.attempt(job.jobId, itemId, n)),
    manifest: () => store.getJson<Manifest>(keys.manifest(job.jobId)),
    record: (itemId: string) => coord.item(job.jobId, itemId),
  };
}
