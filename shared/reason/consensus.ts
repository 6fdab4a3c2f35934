/**
 * Consensus over k sampled answers to the same question. Pure: no I/O, no clock.
 *
 * JSON: the answer is built field by field. Objects are walked key by key and arrays index by
 * index (when every sample's array has the same length; otherwise the whole array is one field).
 * At each leaf the samples vote: numbers agree when within the job's tolerance, strings after
 * lower-casing and collapsing whitespace, anything else when its JSON is equal. The largest group
 * wins and its earliest sample's value is used; a field's agreement is that group's share of all
 * k samples (a sample that is missing the field, or whose answer was not JSON at all, counts
 * against it). Equal largest groups are a tie, settled by sample order and listed as such. The
 * overall agreement is the mean of the fields' agreements.
 *
 * Text: samples agree when their normalised texts are equal; the answer is the earliest sample of
 * the largest group. (Free text rarely matches word for word, so text agreement is a strict measure.)
 */

export interface Tolerance {
  /** Numbers within this absolute difference agree. */
  absolute: number;
  /** ... or within this fraction of the larger magnitude (0.005 = 0.5%). */
  relative: number;
}

export const DEFAULT_TOLERANCE: Tolerance = Object.freeze({ absolute: 0, relative: 0 });

export interface FieldVote {
  /** Where the field is, e.g. `ratios.currentRatio` or `segments[2].revenue`. */
  path: string;
  /** The winning value (absent fields are left out of the answer; `value` is then undefined). */
  value: unknown;
  /** The winning group's share of the k samples, 0..1. */
  agreement: number;
  /** Each distinct value (by the comparison above) with the samples (1-based) that gave it, largest group first. */
  groups: { value: unknown; samples: number[] }[];
  tie: boolean;
}

export interface JsonConsensus {
  answer: unknown;
  /** Mean of the fields' agreements, 0..1 (1 when k = 1). */
  agreement: number;
  /** Every leaf field with its agreement. */
  fields: FieldVote[];
  /** Paths whose vote was a tie. */
  ties: string[];
  /** Fields the samples did not all agree on, with every group. */
  disagreements: FieldVote[];
  /** Samples (1-based) whose answer could not be used (not JSON). */
  unusable: number[];
}

export interface TextConsensus {
  /** Index (0-based) of the chosen sample. */
  chosen: number;
  agreement: number;
  groups: number[][];
  tie: boolean;
}

const ABSENT = Symbol("absent");
type Sample = unknown | typeof ABSENT;

const normaliseText = (s: string) => s.normalize("NFKC").toLowerCase().replace(/\s+/g, " ").trim();

function numbersAgree(a: number, b: number, t: Tolerance): boolean {
  if (a === b) return true;
  const diff = Math.abs(a - b);
  return diff <= t.absolute || diff <= t.relative * Math.max(Math.abs(a), Math.abs(b));
}

/** Whether two leaf values are the same answer. */
function sameLeaf(a: Sample, b: Sample, t: Tolerance): boolean {
  if (a === ABSENT || b === ABSENT) return a === b;
  if (typeof a === "number" && typeof b === "number") return numbersAgree(a, b, t);
  if (typeof a === "string" && typeof b === "string") return normaliseText(a) === normaliseText(b);
  return JSON.stringify(canonical(a, t)) === JSON.stringify(canonical(b, t));
}

/** Strings normalised and keys sorted, so arrays treated as one field compare on content. */
function canonical(v: unknown, t: Tolerance): unknown {
  if (typeof v === "string") return normaliseText(v);
  if (Array.isArray(v)) return v.map((x) => canonical(x, t));
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k], t)]));
  }
  return v;
}

const isObject = (v: Sample): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Votes on one leaf: groups in order of size, then of first appearance. */
function vote(path: string, values: Sample[], t: Tolerance, k: number): FieldVote {
  const groups: { value: Sample; samples: number[] }[] = [];
  values.forEach((v, i) => {
    const g = groups.find((x) => sameLeaf(x.value, v, t));
    if (g) g.samples.push(i + 1);
    else groups.push({ value: v, samples: [i + 1] });
  });
  groups.sort((a, b) => b.samples.length - a.samples.length || a.samples[0]! - b.samples[0]!);
  const top = groups[0]!;
  return {
    path,
    value: top.value === ABSENT ? undefined : top.value,
    agreement: top.samples.length / k,
    groups: groups.map((g) => ({ value: g.value === ABSENT ? null : g.value, samples: g.samples })),
    tie: groups.length > 1 && groups[1]!.samples.length === top.samples.length,
  };
}

function walk(path: string, values: Sample[], t: Tolerance, k: number, fields: FieldVote[]): Sample {
  const present = values.filter((v) => v !== ABSENT);
  if (present.length > 0 && present.every(isObject)) {
    const keyVote = values.filter((v) => v !== ABSENT).length;
    // A whole object missing from most samples is decided at this level, not key by key.
    if (keyVote * 2 < values.length || (keyVote * 2 === values.length && values[0] === ABSENT)) {
      const f = vote(path, values, t, k);
      fields.push(f);
      return f.value === undefined ? ABSENT : f.value;
    }
    const keys = [...new Set(present.flatMap((v) => Object.keys(v as Record<string, unknown>)))];
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const child = walk(path ? `${path}.${key}` : key, values.map((v) => (isObject(v) && Object.hasOwn(v, key) ? v[key] : ABSENT)), t, k, fields);
      if (child !== ABSENT) out[key] = child;
    }
    return out;
  }
  if (present.length === values.length && present.every(Array.isArray) && new Set(present.map((a) => (a as unknown[]).length)).size === 1) {
    const len = (present[0] as unknown[]).length;
    if (len > 0) return Array.from({ length: len }, (_, i) => walk(`${path}[${i}]`, values.map((v) => (v as unknown[])[i]), t, k, fields));
  }
  const f = vote(path || "(answer)", values, t, k);
  fields.push(f);
  return f.value === undefined ? ABSENT : f.value;
}

/**
 * Field-by-field majority over k parsed JSON answers. `undefined` marks a sample whose answer
 * could not be parsed: it votes for nothing.
 */
export function jsonConsensus(samples: (unknown | undefined)[], tolerance: Tolerance = DEFAULT_TOLERANCE): JsonConsensus {
  const k = samples.length;
  if (k === 0) throw new RangeError("consensus needs at least one sample");
  const unusable = samples.flatMap((s, i) => (s === undefined ? [i + 1] : []));
  const fields: FieldVote[] = [];
  const values: Sample[] = samples.map((s) => (s === undefined ? ABSENT : s));
  const answer = values.every((v) => v === ABSENT) ? null : walk("", values, tolerance, k, fields);
  const agreement = fields.length ? fields.reduce((s, f) => s + f.agreement, 0) / fields.length : 0;
  return {
    answer: answer === ABSENT ? null : answer,
    agreement: round4(agreement),
    fields: fields.map((f) => ({ ...f, agreement: round4(f.agreement) })),
    ties: fields.filter((f) => f.tie).map((f) => f.path),
    disagreements: fields.filter((f) => f.groups.length > 1).map((f) => ({ ...f, agreement: round4(f.agreement) })),
    unusable,
  };
}

/** Majority over k text answers (normalised case and spacing). */
export function textConsensus(answers: string[]): TextConsensus {
  if (answers.length === 0) throw new RangeError("consensus needs at least one sample");
  const groups: number[][] = [];
  answers.forEach((a, i) => {
    const g = groups.find((x) => normaliseText(answers[x[0]!]!) === normaliseText(a));
    if (g) g.push(i);
    else groups.push([i]);
  });
  groups.sort((a, b) => b.length - a.length || a[0]! - b[0]!);
  return {
    chosen: groups[0]![0]!,
    agreement: round4(groups[0]!.length / answers.length),
    groups,
    tie: groups.length > 1 && groups[1]!.length === groups[0]!.length,
  };
}

const round4 = (n: number) => Math.round(n * 10_000) / 10_000;
