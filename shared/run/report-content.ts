import type { BatchRequest } from "../job/batch.ts";
import type { JobRecord } from "../job/record.ts";
import { flattenAnswer, type Cell } from "./flatten.ts";
import { inBatches, type Manifest } from "./manifest.ts";
import { keys, type ObjectStore } from "./store.ts";
import type { ItemResult } from "./manifest.ts";
import type { CitationsResult } from "../citations/index.ts";
import type { CitedPlace } from "../citations/gate.ts";

/** What report.html shows beyond the manifest: what was asked, and each item's answer and trace. */
export interface ReportContent {
  /** The job's questions, or its prompt; null for batch files, whose items each carry their own. */
  asked: { questions: { id: string; ask: string }[] } | { prompt: string } | null;
  json: boolean;
  items: Map<string, ItemContent>;
  /** Items past MAX_INLINE_ITEMS: listed in the table with links, their texts not inlined. */
  notInlined: number;
  /** The run's plots as inline SVG (shared/run/plots.ts). */
  plots?: string[];
}

export interface ItemContent {
  /** A batch item's question: its last user message. */
  question?: string;
  answer?: string;
  answerCut?: boolean;
  /** JSON jobs: the answer's fields, flattened as in `results --format csv`. */
  fields?: Map<string, Cell>;
  reasoning?: string;
  reasoningCut?: boolean;
  /** `citations: verify`: the checked citations (result.json) and the text of the pages they name (cited-pages.json). */
  citations?: { result: CitationsResult; places: CitedPlace[] };
}

/** Bounds that keep report.html a file a browser opens: texts past them are cut, with a link to the whole file. */
export const REPORT_LIMITS = { maxInlineItems: 500, maxAnswerChars: 50_000, maxReasoningChars: 50_000, maxQuestionChars: 2_000 };

const cut = (text: string, max: number) => (text.length > max ? { text: text.slice(0, max), cut: true } : { text, cut: false });

/** Reads the answers and traces of the manifest's first items (sixteen reads at a time). */
export async function readReportContent(store: ObjectStore, job: JobRecord, manifest: Manifest, limits = REPORT_LIMITS): Promise<ReportContent> {
  const json = job.spec.output.format === "json";
  const decoder = new TextDecoder();
  const text = async (rel: string | null | undefined) => {
    if (!rel) return undefined;
    const bytes = await store.getBytes(`${keys.run(job.jobId)}${rel}`);
    return bytes ? decoder.decode(bytes) : undefined;
  };
  const shown = manifest.items.slice(0, limits.maxInlineItems);
  const items = new Map<string, ItemContent>();
  const requests = new Map(job.items.filter((i) => i.request).map((i) => [i.id, i.request!]));
  await inBatches(shown, 32, async (item) => {
    const content: ItemContent = {};
    const request = requests.get(item.id);
    if (request) {
      const r = await store.getJson<BatchRequest>(keys.request(job.jobId, item.id)).catch(() => undefined);
      const last = r?.messages.filter((m) => m.role === "user").at(-1);
      if (last) content.question = cut(typeof last.content === "string" ? last.content : last.content.map((p) => p.text).join(""), limits.maxQuestionChars).text;
    }
    const answer = await text(item.answer ?? item.invalidAnswer);
    if (answer !== undefined) {
      if (json) {
        try {
          content.fields = flattenAnswer(JSON.parse(answer));
        } catch {
          // Not JSON after all (an invalid answer): shown as text below.
        }
      }
      if (!content.fields) {
        const a = cut(answer, limits.maxAnswerChars);
        content.answer = a.text;
        content.answerCut = a.cut;
      }
    }
    if (item.citationScore !== undefined) {
      const [result, pages] = await Promise.all([
        store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json")).catch(() => undefined),
        store.getJson<{ places: CitedPlace[] }>(keys.item(job.jobId, item.id, "cited-pages.json")).catch(() => undefined),
      ]);
      if (result?.citations) content.citations = { result: result.citations, places: pages?.places ?? [] };
    }
    const reasoning = await text(item.reasoning);
    if (reasoning !== undefined) {
      const r = cut(reasoning, limits.maxReasoningChars);
      content.reasoning = r.text;
      content.reasoningCut = r.cut;
    }
    items.set(item.id, content);
  });
  const spec = job.spec;
  const asked = job.batch ? null : spec.questions ? { questions: spec.questions.map((q) => ({ id: q.id, ask: q.ask })) } : { prompt: spec.prompt ?? "" };
  return { asked, json, items, notInlined: manifest.items.length - shown.length };
}
