import { LongdocError } from "../errors.ts";
import type { JobItem } from "../job/record.ts";
import { getModel } from "../model/catalog.ts";
import type { LoadedJob } from "./load.ts";

// One run's changes to a job, from the command line (`run`/`estimate` --limit, --only, --model,
// --max-cost): the job file stays as written, and job.json records what this run changed.

export interface JobOverrides {
  /** Only the first N items (after `only`). */
  limit?: number;
  /** Only the items whose id, or one of whose documents, matches one of these globs. */
  only?: string[];
  /** A catalog model instead of the job's `model`. */
  model?: string;
  /** A cost cap in the endpoint's currency instead of the job's `limits.maxCost`/`maxCostUsd`. */
  maxCost?: number;
}

/** What job.json records of a run's overrides: each with the job file's value it replaced. */
export interface RecordedOverrides {
  model?: { job: string; run: string };
  maxCost?: { job: number | null; run: number };
  limit?: number;
  only?: string[];
}

export type ItemSelection = Pick<JobOverrides, "limit" | "only">;

/** The loaded job as this run sees it: model and cost cap replaced, batch lines selected, the item selection kept for submit and estimate. */
export function applyOverrides(loaded: LoadedJob, o: JobOverrides): LoadedJob {
  const recorded: RecordedOverrides = {};
  let { spec, model, batch } = loaded;
  if (o.model !== undefined && o.model !== spec.model) {
    model = getModel(loaded.catalog, o.model);
    recorded.model = { job: spec.model, run: o.model };
    spec = { ...spec, model: o.model };
  }
  if (o.maxCost !== undefined) {
    if (!(o.maxCost > 0)) throw new LongdocError("usage", `--max-cost must be a positive number, got ${o.maxCost}`);
    const { maxCostUsd, maxCost, ...limits } = spec.limits;
    recorded.maxCost = { job: maxCost ?? maxCostUsd ?? null, run: o.maxCost };
    spec = { ...spec, limits: { ...limits, maxCost: o.maxCost } };
  }
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) throw new LongdocError("usage", `--limit must be a positive whole number, got ${o.limit}`);
  const select: ItemSelection | undefined = o.limit !== undefined || o.only?.length ? { ...(o.limit !== undefined && { limit: o.limit }), ...(o.only?.length && { only: o.only }) } : undefined;
  if (select) Object.assign(recorded, select);
  if (batch && select) {
    // A batch file's items are its lines, known now: select them before anything is uploaded.
    const kept = selectItems(batch.requests.map((r) => ({ id: r.customId, documents: [] })), select);
    const ids = new Set(kept.map((i) => i.id));
    batch = { ...batch, spec, requests: batch.requests.filter((r) => ids.has(r.customId)) };
  } else if (batch) batch = { ...batch, spec };
  const changed = Object.keys(recorded).length > 0;
  return { ...loaded, spec, model, ...(batch && { batch }), ...(select && !batch && { select }), ...(changed && { overrides: recorded }) };
}

/** A glob as a RegExp: `*` and `?` within one path segment, `**` across segments. */
function globRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") (re += ".*"), i++;
    else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * The items a run keeps: those whose id, or one of whose documents (its path as listed, or any
 * end of it down to the file name), matches one of `only`; then the first `limit` of them. Keeps the items' ids, so an
 * item tried alone has the id it has in the whole job. None left is a usage error naming examples.
 */
export function selectItems(items: JobItem[], select: ItemSelection): JobItem[] {
  let kept = items;
  if (select.only?.length) {
    const globs = select.only.map(globRegExp);
    const hit = (s: string) => globs.some((g) => g.test(s));
    // A source may be listed by its absolute path: `docs/a.md` matches any path ending in that.
    const tails = (source: string) => [source, ...[...source.matchAll(/\//g)].map((m) => source.slice(m.index + 1))];
    kept = items.filter((i) => hit(i.id) || i.documents.some((d) => tails(d.source).some(hit)));
    if (kept.length === 0) {
      const examples = items.slice(0, 3).map((i) => i.documents[0]?.source ?? i.id);
      throw new LongdocError("usage", `--only ${select.only.join(", ")}: no item matches (item ids are like ${items[0]?.id ?? "(none)"}; documents like ${examples.join(", ") || "(none)"})`);
    }
  }
  return select.limit !== undefined ? kept.slice(0, select.limit) : kept;
}
