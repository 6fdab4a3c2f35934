import { createHash } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { keys, type ObjectStore } from "../shared/run/store.ts";
import type { JobRecord } from "../shared/job/record.ts";
import { checkJobIdForPath, mirrorRun } from "../shared/run/mirror.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { readJob } from "../shared/run/progress.ts";

/**
 * One line of an OpenAI Batch output file (the format of `output_file_id` / `error_file_id`
 * contents): `custom_id` is the item id; a succeeded item carries a 200 response whose body is a
 * chat.completion, a failed or skipped one `response: null` and an `error` with the item's
 * error kind as `code`.
 */
export interface BatchOutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: ChatCompletion } | null;
  error: { code: string; message: string } | null;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: "assistant"; content: string; reasoning_content: string };
    finish_reason: string;
  }[];
  usage: {
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    completion_tokens_details: { reasoning_tokens: number };
    prompt_tokens_details: { cached_tokens: number };
  };
}

const digest = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n);

/** Deterministic, so downloading the same run twice gives the same file. */
const batchRequestId = (jobId: string, itemId: string) => `batch_req_${digest(`${jobId}/${itemId}`, 32)}`;

/** The batch line of one finished item; `answer` and `reasoning` are the texts of its files. */
export function batchLine(jobId: string, r: ItemResult, texts: { answer: string; reasoning: string }): BatchOutputLine {
  const id = batchRequestId(jobId, r.id);
  if (r.status !== "succeeded") {
    return {
      id,
      custom_id: r.id,
      response: null,
      error: { code: r.error?.kind ?? r.status, message: r.error?.message ?? `the item ${r.status === "skipped" ? "was skipped" : "failed"}` },
    };
  }
  const completionId = r.requestId ?? `chatcmpl-${digest(`${jobId}/${r.id}/completion`, 24)}`;
  return {
    id,
    custom_id: r.id,
    response: {
      status_code: 200,
      request_id: r.requestId ?? completionId,
      body: {
        id: completionId,
        object: "chat.completion",
        created: Math.floor(Date.parse(r.startedAt) / 1000),
        model: r.model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: texts.answer, reasoning_content: texts.reasoning },
            finish_reason: r.finishReason ?? "stop",
          },
        ],
        usage: {
          prompt_tokens: r.usage.inputTokens,
          completion_tokens: r.usage.outputTokens,
          total_tokens: r.usage.inputTokens + r.usage.outputTokens,
          completion_tokens_details: { reasoning_tokens: r.usage.reasoningTokens },
          prompt_tokens_details: { cached_tokens: r.usage.cachedTokens },
        },
      },
    },
    error: null,
  };
}

export interface BatchOutput {
  job: JobRecord;
  lines: BatchOutputLine[];
  /** Items with no result yet (the run is still going); they have no line. */
  pending: string[];
}

/** The batch output of a run, one line per finished item in the job's item order. */
export async function batchOutput(store: ObjectStore, jobId: string): Promise<BatchOutput> {
  const job = await readJob(store, jobId);
  const decoder = new TextDecoder();
  const text = async (rel: string | null) => {
    if (!rel) return "";
    const bytes = await store.getBytes(`${keys.run(jobId)}${rel}`);
    return bytes ? decoder.decode(bytes) : "";
  };
  const entries = await Promise.all(
    job.items.map(async (item) => {
      const r = await store.getJson<ItemResult>(keys.item(jobId, item.id, "result.json"));
      if (!r) return { id: item.id, line: null };
      const texts = r.status === "succeeded" ? { answer: await text(r.answer), reasoning: await text(r.reasoning) } : { answer: "", reasoning: "" };
      return { id: item.id, line: batchLine(jobId, r, texts) };
    }),
  );
  return {
    job,
    lines: entries.flatMap((e) => (e.line ? [e.line] : [])),
    pending: entries.filter((e) => !e.line).map((e) => e.id),
  };
}

/**
 * Writes <outDir>/<jobId>/results.jsonl with the lines that succeeded and, when any failed or were
 * skipped, errors.jsonl with those: OpenAI's output and error files (`output_file_id`,
 * `error_file_id`). An errors.jsonl left by an earlier download of the same run is removed when
 * no line failed any more (after a retry).
 */
export async function writeBatchOutput(
  store: ObjectStore,
  jobId: string,
  outDir: string,
): Promise<Omit<BatchOutput, "lines"> & { lines: BatchOutputLine[]; errors: BatchOutputLine[]; file: string; errorFile: string | null }> {
  checkJobIdForPath(jobId);
  const out = await batchOutput(store, jobId);
  const file = path.resolve(outDir, jobId, "results.jsonl");
  const errorsFile = path.resolve(outDir, jobId, "errors.jsonl");
  const lines = out.lines.filter((l) => l.error === null);
  const errors = out.lines.filter((l) => l.error !== null);
  const text = (ls: BatchOutputLine[]) => ls.map((l) => JSON.stringify(l) + "\n").join("");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text(lines));
  if (errors.length) await writeFile(errorsFile, text(errors));
  else await rm(errorsFile, { force: true });
  return { ...out, lines, errors, file, errorFile: errors.length ? errorsFile : null };
}

/** Copies runs/<jobId>/ to <outDir>/<jobId>/, keeping the layout; an unknown job is an input error. */
export async function downloadRun(store: ObjectStore, jobId: string, outDir: string): Promise<{ job: JobRecord; dir: string; files: number }> {
  checkJobIdForPath(jobId);
  const job = await readJob(store, jobId);
  const files = (await store.listKeys(keys.run(jobId))).length;
  const dir = await mirrorRun(store, jobId, outDir);
  return { job, dir, files };
}
