import { LongdocError } from "../errors.ts";
import type { JobItem } from "../job/record.ts";

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

import type { RecordedOverrides } from "../job/record.ts";
export type { RecordedOverrides };

export type ItemSelection = Pick<JobOverrides, "limit" | "only">;

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
