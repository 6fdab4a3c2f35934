/**
 * Plots of a run as inline SVG: pure functions from a run's results (and its calls) to series,
 * and from series to SVG strings. Used by report.html (inline, offline) and by `longdoc ui`
 * (served as image/svg+xml). No chart library: a few lines and bars need no more than this,
 * and the output carries no script, no style sheet and no external reference.
 * Every label is escaped; every number is formatted here.
 */
import type { JobRecord } from "../job/record.ts";
import type { ItemResult } from "./manifest.ts";
import { escapeHtml as escape } from "./markdown.ts";

export interface Point {
  x: number;
  y: number;
}

export interface LinePlot {
  kind: "line";
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  points: Point[];
  /** A horizontal line the series should stay under (the cost cap, the RPM or TPM). */
  limit?: { y: number; label: string };
}

export interface Histogram {
  kind: "histogram";
  id: string;
  title: string;
  xLabel: string;
  bins: { from: number; to: number; count: number }[];
}

export type Plot = LinePlot | Histogram;

/** One model call as the quota counts it: when it started and the tokens it used. */
export interface CallPoint {
  at: number;
  tokens: number;
}

const MINUTE = 60_000;
const minutesSince = (start: number, iso: string) => (Date.parse(iso) - start) / MINUTE;
const byFinish = (results: ItemResult[]) => [...results].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));

/** Finished items over time: one point per finished item (minutes since submission, items finished so far). */
export function finishedOverTime(job: Pick<JobRecord, "submittedAt">, results: ItemResult[]): LinePlot {
  const start = Date.parse(job.submittedAt);
  return {
    kind: "line",
    id: "finished",
    title: "Items finished over time",
    xLabel: "minutes since submission",
    yLabel: "items finished",
    points: byFinish(results).map((r, k) => ({ x: minutesSince(start, r.finishedAt), y: k + 1 })),
  };
}

/** Spend over time: one point per finished item (its cost added when it finished), against the job's cost cap. */
export function spendOverTime(job: Pick<JobRecord, "submittedAt" | "limits" | "currency">, results: ItemResult[]): LinePlot {
  const start = Date.parse(job.submittedAt);
  let total = 0;
  const cap = job.limits.maxCost ?? job.limits.maxCostUsd;
  return {
    kind: "line",
    id: "spend",
    title: "Spend over time",
    xLabel: "minutes since submission",
    yLabel: `spent (${job.currency ?? "USD"})`,
    points: byFinish(results).map((r) => ({ x: minutesSince(start, r.finishedAt), y: (total += r.cost) })),
    ...(cap !== null && cap !== undefined ? { limit: { y: cap, label: `cost cap ${cap}` } } : {}),
  };
}

/** Equal-width bins between the smallest and largest value (at most `maxBins`; one bin when all are equal). */
export function bin(values: number[], maxBins = 10): Histogram["bins"] {
  if (values.length === 0) return [];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (lo === hi) return [{ from: lo, to: hi, count: values.length }];
  const n = Math.min(maxBins, Math.max(1, Math.ceil(Math.sqrt(values.length))));
  const width = (hi - lo) / n;
  const bins = Array.from({ length: n }, (_, k) => ({ from: lo + k * width, to: k === n - 1 ? hi : lo + (k + 1) * width, count: 0 }));
  for (const v of values) bins[Math.min(n - 1, Math.floor((v - lo) / width))]!.count++;
  return bins;
}

/** Input size of an item: its documents' tokens as counted when read, else what its calls sent. */
const inputTokensOf = (r: ItemResult) => {
  const counted = r.documents.map((d) => d.tokens).filter((t): t is number => t !== undefined);
  return counted.length ? counted.reduce((a, b) => a + b, 0) : r.usage.inputTokens;
};

export function inputSizes(results: ItemResult[]): Histogram {
  return { kind: "histogram", id: "input-sizes", title: "Input sizes", xLabel: "input tokens per item", bins: bin(results.filter((r) => r.status !== "skipped").map(inputTokensOf)) };
}

export function durations(results: ItemResult[]): Histogram {
  return { kind: "histogram", id: "durations", title: "Item durations", xLabel: "seconds per item", bins: bin(results.filter((r) => r.durationMs > 0).map((r) => r.durationMs / 1000)) };
}

/**
 * Requests and tokens per minute the run's calls used, one point per minute from its first call
 * to its last, against the job's RPM and TPM (its own caps, which default to the account's).
 */
export function quotaOverTime(job: Pick<JobRecord, "submittedAt" | "limits">, calls: CallPoint[]): { rpm: LinePlot; tpm: LinePlot } {
  const start = Date.parse(job.submittedAt);
  const minutes = new Map<number, { requests: number; tokens: number }>();
  for (const c of calls) {
    const m = Math.max(0, Math.floor((c.at - start) / MINUTE));
    const b = minutes.get(m) ?? { requests: 0, tokens: 0 };
    b.requests++;
    b.tokens += c.tokens;
    minutes.set(m, b);
  }
  const span = minutes.size ? { lo: Math.min(...minutes.keys()), hi: Math.max(...minutes.keys()) } : null;
  const each = span ? Array.from({ length: span.hi - span.lo + 1 }, (_, k) => ({ m: span.lo + k, ...(minutes.get(span.lo + k) ?? { requests: 0, tokens: 0 }) })) : [];
  const line = (name: "RPM" | "TPM", yLabel: string, pick: (b: { requests: number; tokens: number }) => number, limit: number): LinePlot => ({
    kind: "line",
    id: `quota-${name.toLowerCase()}`,
    title: `Quota used: ${yLabel} against the job's ${name}`,
    xLabel: "minute since submission",
    yLabel,
    points: each.map((b) => ({ x: b.m, y: pick(b) })),
    limit: { y: limit, label: `${name} ${limit}` },
  });
  return {
    rpm: line("RPM", "requests per minute", (b) => b.requests, job.limits.rpm),
    tpm: line("TPM", "tokens per minute", (b) => b.tokens, job.limits.tpm),
  };
}

/** The plots of a run from its results: finished and spend over time, input sizes and durations. */
export function runPlots(job: JobRecord, results: ItemResult[]): Plot[] {
  return [finishedOverTime(job, results), spendOverTime(job, results), inputSizes(results), durations(results)];
}

/**
 * The quota a run used, from its results alone (what the report's writers have read anyway): each
 * item's calls counted at the item's start, its tokens shared among them. Coarser than the live
 * page's, which reads every attempt record, and cheap for a job of 50,000 items.
 */
export function resultCallPoints(results: ItemResult[]): CallPoint[] {
  return results.flatMap((r) => {
    const calls = Math.max(1, r.finishReasons?.length ?? 1);
    const tokens = r.usage.inputTokens + r.usage.outputTokens;
    if (tokens === 0) return [];
    return Array.from({ length: calls }, () => ({ at: Date.parse(r.startedAt), tokens: tokens / calls }));
  });
}

/** report.html's plots, drawn: every writer of the report passes them (finish.ts, finalize.ts). */
export const reportPlots = (job: JobRecord, results: Map<string, ItemResult>): string[] => {
  const all = [...results.values()];
  const quota = quotaOverTime(job, resultCallPoints(all));
  return [...runPlots(job, all), quota.rpm, quota.tpm].map((p) => renderPlot(p));
};

// Rendering.

const W = 480;
const H = 220;
const PAD = { left: 58, right: 14, top: 26, bottom: 40 };
const plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

/** A number short enough for an axis: 1234567 → 1.23M, 0.001234 → 0.00123. */
export function shortNumber(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(n / 1e3).toPrecision(3)}k`;
  if (a === 0 || a >= 1) return `${+n.toPrecision(4)}`;
  return `${+n.toPrecision(3)}`;
}

const r2 = (n: number) => Math.round(n * 100) / 100;

function frame(p: Plot, body: string, xMin: string, xMax: string, yMax: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="${escape(p.id)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escape(p.title)}">` +
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>` +
    `<text x="${PAD.left}" y="16" font-family="sans-serif" font-size="13" font-weight="bold">${escape(p.title)}</text>` +
    `<line x1="${PAD.left}" y1="${PAD.top + plotH}" x2="${PAD.left + plotW}" y2="${PAD.top + plotH}" stroke="#888"/>` +
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + plotH}" stroke="#888"/>` +
    `<g font-family="sans-serif" font-size="11" fill="#444">` +
    `<text x="${PAD.left - 4}" y="${PAD.top + 4}" text-anchor="end">${escape(yMax)}</text>` +
    `<text x="${PAD.left - 4}" y="${PAD.top + plotH}" text-anchor="end">0</text>` +
    `<text x="${PAD.left}" y="${PAD.top + plotH + 14}">${escape(xMin)}</text>` +
    `<text x="${PAD.left + plotW}" y="${PAD.top + plotH + 14}" text-anchor="end">${escape(xMax)}</text>` +
    `<text x="${PAD.left + plotW / 2}" y="${H - 6}" text-anchor="middle">${escape(p.xLabel)}</text>` +
    (p.kind === "line" ? `<text x="12" y="${PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 12 ${PAD.top + plotH / 2})">${escape(p.yLabel)}</text>` : "") +
    `</g>${body}</svg>`
  );
}

const empty = (p: Plot) =>
  frame(p, `<text x="${PAD.left + plotW / 2}" y="${PAD.top + plotH / 2}" text-anchor="middle" font-family="sans-serif" font-size="12" fill="#888">no data yet</text>`, "", "", "");

export function renderLinePlot(p: LinePlot): string {
  if (p.points.length === 0) return empty(p);
  const xs = p.points.map((q) => q.x);
  const xLo = Math.min(0, ...xs);
  const xHi = Math.max(...xs);
  const yHi = Math.max(...p.points.map((q) => q.y), p.limit?.y ?? 0) || 1;
  const sx = (x: number) => r2(PAD.left + (xHi === xLo ? plotW / 2 : ((x - xLo) / (xHi - xLo)) * plotW));
  const sy = (y: number) => r2(PAD.top + plotH - (y / yHi) * plotH);
  const pts = p.points.map((q) => `${sx(q.x)},${sy(q.y)}`).join(" ");
  const limit = p.limit
    ? `<line class="limit" x1="${PAD.left}" y1="${sy(p.limit.y)}" x2="${PAD.left + plotW}" y2="${sy(p.limit.y)}" stroke="#cf222e" stroke-dasharray="5 4"/>` +
      `<text x="${PAD.left + plotW}" y="${sy(p.limit.y) - 4}" text-anchor="end" font-family="sans-serif" font-size="11" fill="#cf222e">${escape(p.limit.label)}</text>`
    : "";
  const dots = p.points.length <= 200 ? p.points.map((q) => `<circle cx="${sx(q.x)}" cy="${sy(q.y)}" r="2" fill="#0969da"/>`).join("") : "";
  return frame(
    p,
    `${limit}<polyline class="series" data-points="${p.points.length}" points="${pts}" fill="none" stroke="#0969da" stroke-width="2"/>${dots}`,
    shortNumber(xLo),
    shortNumber(xHi),
    shortNumber(yHi),
  );
}

export function renderHistogram(h: Histogram): string {
  if (h.bins.length === 0) return empty(h);
  const top = Math.max(...h.bins.map((b) => b.count));
  const w = plotW / h.bins.length;
  const bars = h.bins
    .map((b, k) => {
      const bh = r2((b.count / top) * plotH);
      return `<rect class="bar" data-count="${b.count}" x="${r2(PAD.left + k * w + 1)}" y="${r2(PAD.top + plotH - bh)}" width="${r2(Math.max(1, w - 2))}" height="${bh}" fill="#54aeff"><title>${escape(`${shortNumber(b.from)}–${shortNumber(b.to)}: ${b.count}`)}</title></rect>`;
    })
    .join("");
  return frame(h, bars, shortNumber(h.bins[0]!.from), shortNumber(h.bins.at(-1)!.to), String(top));
}

export const renderPlot = (p: Plot): string => (p.kind === "line" ? renderLinePlot(p) : renderHistogram(p));
