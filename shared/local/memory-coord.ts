import { randomUUID } from "node:crypto";
import { isTerminal, type Coordinator, type CoordinatorOptions, type ItemRecord, type ItemStatus, type JobEntry, type QuotaTicket } from "../run/coord.ts";
import { DEFAULT_HEADROOM, earliestStart, prune, type QuotaEntry } from "../run/quota-schedule.ts";

/**
 * The coordination store in one process's memory, with the same rules as the DynamoDB one
 * (shared/run/coord.ts): conditional claims and leases, attempts/refusals/deliveries, bookings, the
 * quota's log of planned starts and its line of bookings, the spend ledger in integer nano-USD, the
 * finish counter. Each method reads and writes its record with no await in between, which is what
 * DynamoDB's conditional writes give the real one. For fast tests of the worker's rules; test/coord.test.ts
 * runs the same rule checks against both, so they cannot drift apart.
 */
export function createMemoryCoordinator(opts: Pick<CoordinatorOptions, "now" | "headroom"> = {}): MemoryCoordinator {
  const clock = opts.now ?? Date.now;
  const headroom = opts.headroom ?? DEFAULT_HEADROOM;
  const claims = new Map<string, ClaimRow>();
  const logs = new Map<string, QuotaEntry[]>();
  const lines = new Map<string, number>();
  const ledgers = new Map<string, { spent: number; committed: number }>();
  const jobs = new Map<string, { record?: JobEntry; finished: number }>();
  const speeds = new Map<string, { decode?: number; prefill?: number; samples: number }>();
  const sentBatches = new Map<string, Set<number>>();
  const jobEnds = new Map<string, { owner: string; leaseUntil: number; sent: boolean }>();

  const claimOf = (jobId: string, itemId: string): ClaimRow => {
    const key = `${jobId}#${itemId}`;
    let row = claims.get(key);
    if (!row) claims.set(key, (row = { attempts: 0, refusals: 0, deliveries: 0 }));
    return row;
  };
  const peekClaim = (jobId: string, itemId: string) => claims.get(`${jobId}#${itemId}`);
  const jobOf = (jobId: string) => {
    let j = jobs.get(jobId);
    if (!j) jobs.set(jobId, (j = { finished: 0 }));
    return j;
  };
  const ledgerOf = (jobId: string) => {
    let l = ledgers.get(jobId);
    if (!l) ledgers.set(jobId, (l = { spent: 0, committed: 0 }));
    return l;
  };

  const reserveKey = (key: string, limits: { rpm?: number; tpm?: number }, entry: { id: string; tokens: number }, notBefore: number, now: number, maxWaitMs: number) => {
    const log = prune(logs.get(key) ?? [], now, { headroom });
    const startAt = earliestStart(log, limits, entry.tokens, Math.max(now, notBefore), { headroom });
    if (startAt - now > maxWaitMs) return { ok: false as const, retryAfterMs: Math.max(1, Math.ceil(startAt - now - maxWaitMs)) };
    logs.set(key, [...log, { id: entry.id, at: startAt, tokens: entry.tokens }]);
    return { ok: true as const, startAt };
  };

  const editEntry = (key: string, id: string, tokens: number | null) => {
    const log = logs.get(key);
    if (!log) return;
    logs.set(key, tokens === null ? log.filter((e) => e.id !== id) : log.map((e) => (e.id === id ? { ...e, tokens } : e)));
  };

  const advanceLine = (key: string, limits: { rpm?: number; tpm?: number }, tokens: number, now: number): number => {
    const keep = 1 - headroom;
    const stepMs = Math.ceil(Math.max(limits.tpm ? (tokens / (limits.tpm * keep)) * 60_000 : 0, limits.rpm ? 60_000 / (limits.rpm * keep) : 0));
    const end = Math.max(lines.get(key) ?? 0, now);
    lines.set(key, end + stepMs);
    return end;
  };

  const accountKey = (model: string) => `quota#${model}`;
  const jobKey = (jobId: string) => `quota#job#${jobId}`;

  return {
    item(jobId, itemId) {
      const row = peekClaim(jobId, itemId);
      return row ? itemRecord(row) : null;
    },

    async reserveQuota(r) {
      const now = r.now ?? clock();
      const entry = { id: randomUUID(), tokens: r.tokens };
      const keys: string[] = [];
      let notBefore = now;
      if (r.job && (r.job.rpm || r.job.tpm)) {
        const got = reserveKey(jobKey(r.job.jobId), { rpm: r.job.rpm, tpm: r.job.tpm }, entry, now, now, r.maxWaitMs);
        if (!got.ok) return got;
        keys.push(jobKey(r.job.jobId));
        notBefore = got.startAt;
      }
      const got = reserveKey(accountKey(r.model), r.account, entry, notBefore, now, r.maxWaitMs);
      if (!got.ok) {
        // The job's slot goes unused: give it back so the job's next call is not pushed out.
        if (keys.length) editEntry(keys[0]!, entry.id, null);
        return got;
      }
      keys.push(accountKey(r.model));
      const ticket: QuotaTicket = { keys, reservedTokens: r.tokens, entryId: entry.id, startAt: got.startAt };
      return { ok: true, startAt: got.startAt, ticket };
    },

    async settleQuota(ticket, actualTokens) {
      for (const key of ticket.keys) editEntry(key, ticket.entryId, Math.max(0, actualTokens));
    },

    async releaseQuota(ticket) {
      for (const key of ticket.keys) editEntry(key, ticket.entryId, null);
    },

    async claimItem(jobId, itemId, owner, leaseMs, now = clock()) {
      const row = claimOf(jobId, itemId);
      const open = row.status === undefined || row.status === "queued" || row.status === "running";
      const free = row.leaseUntil === undefined || row.leaseUntil < now || row.owner === owner;
      if (!(open && free)) return { ok: false, item: itemRecord(row) };
      Object.assign(row, { owner, leaseUntil: now + leaseMs, status: "running" as const, deliveries: row.deliveries + 1 });
      return { ok: true, item: itemRecord(row) };
    },

    async renewClaim(jobId, itemId, owner, leaseMs, now = clock()) {
      const row = peekClaim(jobId, itemId);
      if (row?.owner !== owner) return false;
      row.leaseUntil = now + leaseMs;
      return true;
    },

    async releaseClaim(jobId, itemId, owner) {
      const row = peekClaim(jobId, itemId);
      // Someone else holds it now (or it finished): nothing of ours to give up.
      if (row?.owner !== owner || row.status !== "running") return;
      row.status = "queued";
      delete row.owner;
      delete row.leaseUntil;
    },

    async countAttempt(jobId, itemId) {
      return ++claimOf(jobId, itemId).attempts;
    },

    async countRefusal(jobId, itemId) {
      claimOf(jobId, itemId).refusals++;
    },

    async setBooking(jobId, itemId, owner, bookedAt) {
      const row = peekClaim(jobId, itemId);
      if (row?.owner !== owner) return;
      if (bookedAt === null) delete row.bookedAt;
      else row.bookedAt = bookedAt;
    },

    async bookQuota(r) {
      const now = Math.max(r.now ?? clock(), r.notBefore ?? 0);
      const jobAt = r.job && (r.job.rpm || r.job.tpm) ? advanceLine(jobKey(r.job.jobId), { rpm: r.job.rpm, tpm: r.job.tpm }, r.tokens, now) : now;
      const accountAt = advanceLine(accountKey(r.model), r.account, r.tokens, now);
      return Math.max(jobAt, accountAt);
    },

    async shortenLine(r) {
      const back = (limits: { tpm?: number }) => (limits.tpm ? Math.floor((r.unusedTokens / (limits.tpm * (1 - headroom))) * 60_000) : 0);
      const shorten = (key: string, ms: number) => {
        const end = lines.get(key);
        if (end !== undefined && end > 0 && ms !== 0) lines.set(key, end - ms);
      };
      shorten(accountKey(r.model), back(r.account));
      if (r.job && r.job.tpm) shorten(jobKey(r.job.jobId), back(r.job));
    },

    async quotaLineEnd(model, jobId, now = clock()) {
      return Math.max(now, lines.get(accountKey(model)) ?? 0, jobId ? (lines.get(jobKey(jobId)) ?? 0) : 0);
    },

    async reserveSpend(jobId, amountUsd, capUsd) {
      const n = nano(amountUsd);
      const bound = nano(capUsd) - n;
      const ledger = ledgerOf(jobId);
      if (bound >= 0 && ledger.committed <= bound) {
        ledger.committed += n;
        return { ok: true };
      }
      return { ok: false, spentUsd: usd(ledger.spent), committedUsd: usd(ledger.committed), capReached: ledger.spent + n > nano(capUsd) };
    },

    async settleSpend(jobId, reservedUsd, actualUsd) {
      const ledger = ledgerOf(jobId);
      ledger.spent += nano(actualUsd);
      ledger.committed += nano(actualUsd) - nano(reservedUsd);
    },

    async spend(jobId) {
      const ledger = ledgers.get(jobId);
      return { spentUsd: usd(ledger?.spent ?? 0), committedUsd: usd(ledger?.committed ?? 0) };
    },

    async finishItem(jobId, itemId, status, total) {
      const row = claimOf(jobId, itemId);
      const job = jobOf(jobId);
      if (row.status !== undefined && isTerminal(row.status)) return { counted: false, finished: job.finished, last: false };
      row.status = status;
      delete row.bookedAt;
      const finished = ++job.finished;
      return { counted: true, finished, last: finished === total };
    },

    async reopenItems(jobId, itemIds) {
      for (const itemId of itemIds) {
        const row = claimOf(jobId, itemId);
        if (row.status !== undefined && isTerminal(row.status)) jobOf(jobId).finished--;
        Object.assign(row, { attempts: 0, refusals: 0, status: "queued" as const });
        delete row.owner;
        delete row.leaseUntil;
        delete row.bookedAt;
      }
    },

    async modelSpeed(model) {
      const s = speeds.get(model);
      return s ? { decodeTokensPerSecond: s.decode ?? null, prefillTokensPerSecond: s.prefill ?? null, samples: s.samples } : null;
    },

    async recordModelSpeed(model, seen) {
      const mix = (old: number | undefined, x: number | undefined) => (x === undefined || !(x > 0) ? old : old !== undefined ? old * (1 - SPEED_WEIGHT) + x * SPEED_WEIGHT : x);
      const s = speeds.get(model) ?? { samples: 0 };
      const decode = mix(s.decode, seen.decodeTokensPerSecond);
      const prefill = mix(s.prefill, seen.prefillTokensPerSecond);
      if (decode === undefined && prefill === undefined) return;
      speeds.set(model, { decode, prefill, samples: s.samples + 1 });
    },

    async registerJob(jobId, record) {
      const job = jobOf(jobId);
      if (job.record) return { created: false, record: { ...job.record } };
      job.record = { ...record, state: "submitting" };
      return { created: true, record: { ...job.record } };
    },

    async setJobState(jobId, state) {
      // A job never registered stays unreadable (its register would start it at submitting anyway).
      const job = jobOf(jobId);
      if (job.record) job.record = { ...job.record, state };
    },

    async readJobEntry(jobId) {
      const record = jobs.get(jobId)?.record;
      return record ? { ...record } : null;
    },

    async markTaskBatchesSent(jobId, batches) {
      const sent = sentBatches.get(jobId) ?? new Set<number>();
      for (const b of batches) sent.add(b);
      sentBatches.set(jobId, sent);
    },

    async sentTaskBatches(jobId, batchCount) {
      return new Set([...(sentBatches.get(jobId) ?? [])].filter((b) => b < batchCount));
    },

    async claimJobEnd(jobId, round, owner, leaseMs, now = clock()) {
      const key = `${jobId}#${round}`;
      const end = jobEnds.get(key);
      if (end?.sent) return "sent";
      if (end && end.owner !== owner && end.leaseUntil >= now) return "held";
      jobEnds.set(key, { owner, leaseUntil: now + leaseMs, sent: false });
      return "claimed";
    },

    async markJobEndSent(jobId, round) {
      const key = `${jobId}#${round}`;
      jobEnds.set(key, { owner: jobEnds.get(key)?.owner ?? "", leaseUntil: 0, sent: true });
    },
  };
}

/** The store, plus a look at an item's record that changes nothing (the interface has none: a delivery always claims). */
export interface MemoryCoordinator extends Coordinator {
  item(jobId: string, itemId: string): ItemRecord | null;
}

interface ClaimRow {
  status?: ItemStatus;
  owner?: string;
  leaseUntil?: number;
  attempts: number;
  refusals: number;
  deliveries: number;
  bookedAt?: number;
}

/** Weight of a new sample in the rolling speed figures (as in the DynamoDB store). */
const SPEED_WEIGHT = 0.2;
const NANO = 1e9;
const nano = (v: number) => Math.round(v * NANO);
const usd = (n: number) => n / NANO;

function itemRecord(row: ClaimRow): ItemRecord {
  return {
    status: row.status ?? "queued",
    owner: row.owner ?? null,
    leaseUntil: row.leaseUntil ?? 0,
    attempts: row.attempts,
    refusals: row.refusals,
    deliveries: row.deliveries,
    bookedAt: row.bookedAt ?? null,
  };
}
