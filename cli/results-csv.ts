import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { JobRecord } from "../shared/job/record.ts";
import { checkJobIdForPath } from "../shared/run/mirror.ts";
import { currentManifest, inBatches, type ManifestItem } from "../shared/run/manifest.ts";
import { readJob } from "../shared/run/progress.ts";
import { keys, type ObjectStore } from "../shared/run/store.ts";
import { csvText, type Cell } from "./csv.ts";
import { flattenAnswer } from "../shared/run/flatten.ts";

export { flattenAnswer };

/** The columns every row has, before the answer's. */
export const CSV_BASE_COLUMNS = [
  "id", "documents", "status", "error_kind", "error_message", "attempts", "cost_usd",
  "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "answer_path",
];

export interface CsvOutput {
  job: JobRecord;
  header: string[];
  rows: Cell[][];
  /** Items with no result yet: they have a row with status `queued` and no answer. */
  pending: string[];
}

/**
 * One row per item in the job's order. Text jobs carry the answer's text in an `answer` column;
 * JSON jobs one `answer.<field>` column per field any item's answer has (first seen first).
 */
export async function csvOutput(store: ObjectStore, jobId: string): Promise<CsvOutput> {
  const job = await readJob(store, jobId);
  const manifest = await currentManifest(store, job);
  const json = job.spec.output.format === "json";
  const answers = new Map<string, Map<string, Cell>>();
  const decoder = new TextDecoder();
  await inBatches(manifest.items, 16, async (item: ManifestItem) => {
    if (!item.answer) return;
    const bytes = await store.getBytes(`${keys.run(jobId)}${item.answer}`);
    if (!bytes) return;
    const text = decoder.decode(bytes);
    if (!json) return void answers.set(item.id, new Map([["answer", text]]));
    try {
      answers.set(item.id, flattenAnswer(JSON.parse(text)));
    } catch {
      answers.set(item.id, new Map([["answer", text]]));
    }
  });
  const answerColumns: string[] = [];
  const known = new Set<string>();
  if (!json) answerColumns.push("answer");
  for (const item of manifest.items) {
    for (const column of answers.get(item.id)?.keys() ?? []) if (!known.has(column)) known.add(column), answerColumns.push(column);
  }
  // citations: verify adds the item's citation score (supported quotes / all quotes) before the answer.
  const cited = job.spec.citations === "verify";
  const rows = manifest.items.map((i): Cell[] => {
    const answer = answers.get(i.id);
    return [
      i.id, i.documents.join("; "), i.status, i.error?.kind, i.error?.message, i.attempts, i.costUsd,
      i.usage.inputTokens, i.usage.outputTokens, i.usage.reasoningTokens, i.usage.cachedTokens, i.answer,
      ...(cited ? [i.citationScore] : []),
      ...answerColumns.map((c) => answer?.get(c)),
    ];
  });
  return { job, header: [...CSV_BASE_COLUMNS, ...(cited ? ["citation_score"] : []), ...answerColumns], rows, pending: manifest.items.filter((i) => i.status === "queued").map((i) => i.id) };
}

/** Writes <outDir>/<jobId>/results.csv. */
export async function writeCsvOutput(store: ObjectStore, jobId: string, outDir: string): Promise<CsvOutput & { file: string }> {
  checkJobIdForPath(jobId);
  const out = await csvOutput(store, jobId);
  const file = path.resolve(outDir, jobId, "results.csv");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, csvText(out.header, out.rows));
  return { ...out, file };
}
