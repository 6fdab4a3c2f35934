/**
 * When may a request start without the provider refusing it? The provider counts requests and
 * tokens over sliding one-minute windows and over one-second windows holding RPM/60 and TPM/60
 * (docs/qwen-api.md §7); a request's tokens are dated at its admission. A pacing interval
 * after each start cannot keep the per-second token window for requests of different sizes (a
 * large request needs the second before it nearly empty), so the schedule keeps a log of recent
 * starts and places each new start at the earliest time both windows have room for it.
 *
 * Pure: the coordination store keeps the log per model (and per job with its own caps).
 */

export interface QuotaEntry {
  id: string;
  /** Planned start, epoch ms. */
  at: number;
  /** Worst-case tokens until settled, then the billed tokens (prompt + completion). */
  tokens: number;
}

export interface WindowLimits {
  rpm?: number;
  tpm?: number;
}

export interface ScheduleOptions {
  /** Share of RPM/TPM left unused (default DEFAULT_HEADROOM). */
  headroom?: number;
  /** The windows are checked this much wider, for the time a request takes to reach the provider and clock jitter. */
  marginMs?: number;
}

/**
 * Share of the quota left unused. Token counts are exact and reservations are worst-case until
 * settled, and the margin below covers timing, so this is only a small safety net:
 * bench:fleet shows 0 refusals with 2 %.
 */
export const DEFAULT_HEADROOM = 0.02;

/** The windows are checked this much wider: a request reaches the provider a little after its planned start. */
export const DEFAULT_MARGIN_MS = 200;

const SECOND = 1_000;
const MINUTE = 60_000;

interface Window {
  count: number;
  tokens: number;
}

function windowAt(entries: QuotaEntry[], end: number, width: number): Window {
  let count = 0;
  let tokens = 0;
  for (const e of entries) {
    if (e.at > end - width && e.at <= end) {
      count++;
      tokens += e.tokens;
    }
  }
  return { count, tokens };
}

/** Whether a request of `tokens` may start at `at` given the planned starts in `entries`. */
export function fits(entries: QuotaEntry[], limits: WindowLimits, tokens: number, at: number, o: ScheduleOptions = {}): boolean {
  const keep = 1 - (o.headroom ?? DEFAULT_HEADROOM);
  const margin = o.marginMs ?? DEFAULT_MARGIN_MS;
  const second = windowAt(entries, at, SECOND + margin);
  const minute = windowAt(entries, at, MINUTE + 4 * margin);
  if (limits.rpm) {
    if (minute.count + 1 > Math.max(1, Math.floor(limits.rpm * keep))) return false;
    if (second.count + 1 > Math.max(1, Math.floor(limits.rpm / 60))) return false;
  }
  if (limits.tpm) {
    const tpm = limits.tpm * keep;
    // A request larger than a whole window can only go into an empty one (the provider then takes it).
    if (minute.tokens > 0 && minute.tokens + tokens > tpm) return false;
    if (second.tokens > 0 && second.tokens + tokens > tpm / 60) return false;
  }
  return true;
}

/**
 * The earliest start ≥ `from` at which the request fits and every start planned after it still
 * fits with it. A request may take room before a planned start (a large request waiting in process
 * for the windows to empty, say) as long as it leaves that start the room it relies on: otherwise
 * one such wait would hold every smaller request behind it while the quota goes unused.
 */
export function earliestStart(entries: QuotaEntry[], limits: WindowLimits, tokens: number, from: number, o: ScheduleOptions = {}): number {
  const margin = o.marginMs ?? DEFAULT_MARGIN_MS;
  // Feasibility changes only where an entry starts or leaves one of the windows.
  const candidates = [from, ...entries.flatMap((e) => [e.at, e.at + SECOND + margin + 1, e.at + MINUTE + 4 * margin + 1])]
    .filter((t) => t >= from)
    .sort((a, b) => a - b);
  const planned = entries.map((e) => ({ at: e.at, tokens: e.tokens, second: windowAt(entries, e.at, SECOND + margin), minute: windowAt(entries, e.at, MINUTE + 4 * margin) }));
  for (const t of candidates) if (fits(entries, limits, tokens, t, o) && leavesRoom(planned, limits, tokens, t, o)) return t;
  // Past every entry's windows the request fits (alone, if it is larger than a window).
  return candidates.at(-1) ?? from;
}

/** Whether every start planned after `at` still fits with a request of `tokens` added at `at`. */
function leavesRoom(planned: { at: number; tokens: number; second: Window; minute: Window }[], limits: WindowLimits, tokens: number, at: number, o: ScheduleOptions): boolean {
  const keep = 1 - (o.headroom ?? DEFAULT_HEADROOM);
  const margin = o.marginMs ?? DEFAULT_MARGIN_MS;
  for (const p of planned) {
    if (p.at <= at) continue;
    const inSecond = at > p.at - SECOND - margin;
    const inMinute = at > p.at - MINUTE - 4 * margin;
    if (limits.rpm) {
      if (inMinute && p.minute.count + 1 > Math.max(1, Math.floor(limits.rpm * keep))) return false;
      if (inSecond && p.second.count + 1 > Math.max(1, Math.floor(limits.rpm / 60))) return false;
    }
    if (limits.tpm) {
      const tpm = limits.tpm * keep;
      if (inMinute && p.minute.tokens + tokens > tpm) return false;
      if (inSecond && p.second.tokens + tokens > tpm / 60) return false;
    }
  }
  return true;
}

/** Entries that can no longer affect a window ending at `now` or later. */
export function prune(entries: QuotaEntry[], now: number, o: ScheduleOptions = {}): QuotaEntry[] {
  const margin = o.marginMs ?? DEFAULT_MARGIN_MS;
  return entries.filter((e) => e.at > now - MINUTE - 4 * margin);
}
