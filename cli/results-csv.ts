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
 * One row per item in the job's order. Text jobs carry the answer's text in one `answer` column,
 * or one `answer.<questionId>` column per question when each question had its own call;
 * JSON jobs one `answer.<field>` column per field any item's answer has (first seen first).
 */
export async function csvOutput(store: ObjectStore, jobId: string): Promise<CsvOutput> {
  const job = await readJob(store, jobId);
  const manifest = await currentManifest(store, job);
  const json = job.spec.output.format === "json";
  const perQuestion = !json && job.spec.calls === "per-question" && (job.spec.questions?.length ?? 0) > 1 ? job.spec.questions!.map((q) => q.id) : null;
  const answers = new Map<string, Map<string, Cell>>();
  const decoder = new TextDecoder();
  await inBatches(manifest.items, 16, async (item: ManifestItem) => {
    if (!item.answer) return;
    const bytes = await store.getBytes(`${keys.run(jobId)}${item.answer}`);
    if (!bytes) return;
    const text = decoder.decode(bytes);
    if (perQuestion) return void answers.set(item.id, splitByQuestion(text, perQuestion));
    if (!json) return void answers.set(item.id, new Map([["answer", text]]));
    try {
      answers.set(item.id, flattenAnswer(JSON.parse(text)));
    } catch {
      answers.set(item.id, new Map([["answer", text]]));
    }
  });
  const answerColumns: string[] = [];
  const known = new Set<string>();
  const fixed = perQuestion ? perQuestion.map((id) => `answer.${id}`) : json ? [] : ["answer"];
  for (const column of fixed) known.add(column), answerColumns.push(column);
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

/**
 * A per-question text answer as the worker joins it (`## <id>` then a blank line before each
 * question's answer, in the job's order) split back into one cell per question. Headings are
 * looked for in that order, so an answer's own `## ...` lines stay in its cell.
 */
export function splitByQuestion(text: string, ids: string[]): Map<string, Cell> {
  const cells = new Map<string, Cell>();
  let at = 0;
  for (const [i, id] of ids.entries()) {
    const heading = `${i === 0 ? "" : "\n\n"}## ${id}\n\n`;
    // Not in the joined form (say, an older answer): the whole text in the first question's column.
    if (!text.startsWith(heading, at)) return i === 0 ? new Map([[`answer.${id}`, text]]) : cells;
    const body = at + heading.length;
    const next = i + 1 < ids.length ? text.indexOf(`\n\n## ${ids[i + 1]}\n\n`, body) : -1;
    at = next < 0 ? text.length : next;
    cells.set(`answer.${id}`, text.slice(body, at));
  }
  return cells;
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
