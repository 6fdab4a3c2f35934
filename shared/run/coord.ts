import { randomUUID } from "node:crypto";
import { GetItemCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClient, type UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import { InfraError } from "../errors.ts";
import { DEFAULT_HEADROOM, earliestStart, prune, type QuotaEntry } from "./quota-schedule.ts";

/**
 * The fleet's coordination store: one DynamoDB table (hash key `pk`, TTL on `expiresAt`) shared
 * by every worker and every job. One item per thing that needs an atomic decision:
 *
 * - `quota#<model>`, `quota#job#<jobId>`: pacing of model calls (the log of planned starts, and
 *   `lineEnd`, where the line of requests booked into the future ends)
 * - `claim#<jobId>#<itemId>`: the item's record (status, owner, leaseUntil, attempts, refusals, deliveries, bookedAt)
 * - `spend#<jobId>`: the cost ledger (spent, committed; integer nano-USD)
 * - `job#<jobId>`: the submit record (trigger, items, createdAt, state) and the `finished` count
 * - `speed#<model>`: a rolling figure of the model's decode and prefill speed (tokens/s) seen by the fleet
 *
 * Every write refreshes `expiresAt` (epoch seconds), so a live job's items never expire; DynamoDB
 * deletes the rest days later. Nothing relies on expiry for correctness (the local emulator,
 * dynalite, never expires items).
 */

export interface QuotaLimits {
  rpm: number;
  tpm: number;
}
export type QuotaReservation =
  | { ok: true; startAt: number /* epoch ms when the call may start (≤ now + maxWaitMs) */; ticket: QuotaTicket }
  | { ok: false; retryAfterMs: number /* expected wait before a slot would be within maxWaitMs */ };
export interface QuotaTicket {
  keys: string[];
  reservedTokens: number;
  /** The request's entry in each key's log of planned starts. */
  entryId: string;
  startAt: number;
}

/** An item's states: queued until a delivery claims it, running while one holds it, then one of the three terminal ones. */
export type ItemStatus = "queued" | "running" | TerminalStatus;
export type TerminalStatus = "succeeded" | "failed" | "skipped";
export const TERMINAL: readonly TerminalStatus[] = ["succeeded", "failed", "skipped"];
export const isTerminal = (s: ItemStatus): s is TerminalStatus => (TERMINAL as readonly string[]).includes(s);

/**
 * The item's transitions, each one conditional write of the Coordinator: the only ways its status
 * changes. A claim also takes over a running item whose lease ran out (its worker died).
 */
export const ITEM_TRANSITIONS = {
  claim: { from: ["queued", "running"], to: "running" },
  release: { from: ["running"], to: "queued" },
  finish: { from: ["queued", "running"], to: TERMINAL },
  reopen: { from: TERMINAL, to: "queued" },
} as const satisfies Record<string, { from: readonly ItemStatus[]; to: ItemStatus | readonly ItemStatus[] }>;

/** `claim#<jobId>#<itemId>`: the one source of truth of an item's state. */
export interface ItemRecord {
  status: ItemStatus;
  /** Who holds the item now, and until when (epoch ms); null when nobody does. */
  owner: string | null;
  leaseUntil: number;
  /** Attempts: deliveries that sent a request to the model. */
  attempts: number;
  /** Of those, the ones the provider refused with a rate limit (they do not use up maxAttempts). */
  refusals: number;
  /** Deliveries that claimed the item. */
  deliveries: number;
  /** The item's place in the quota's future (epoch ms), while it waits for it. */
  bookedAt: number | null;
}

/** `sending`: the job record is written and its tasks are going out (workers run them as they come). */
export type JobState = "submitting" | "sending" | "submitted" | "failed" | "interrupted" | "running" | "done";
/** `job#<jobId>`: the submit's record of a job. */
export interface JobEntry {
  trigger: string;
  items: number;
  createdAt: string;
  state: string;
}

export interface Coordinator {
  /** One request of `tokens` (input + answer cap + thinking budget: the worst case) against the account quota of `model`, and also against the job's own caps when given. */
  reserveQuota(r: {
    model: string;
    tokens: number;
    account: QuotaLimits;
    job?: { jobId: string; rpm?: number; tpm?: number };
    maxWaitMs: number;
    now?: number;
  }): Promise<QuotaReservation>;
  /** After the call: give back (or add) the difference between reserved and real tokens (input + output as billed). */
  settleQuota(ticket: QuotaTicket, actualTokens: number): Promise<void>;
  /** The request will not start at its planned time (the worker was late, or gave up): its entries are removed. */
  releaseQuota(ticket: QuotaTicket): Promise<void>;

  /**
   * Takes the item for one delivery: ok when nobody else holds a live lease and the item is not
   * finished (an expired lease is taken over). Either way the answer carries the item's record as
   * it stands, so a refused claim costs no second read.
   */
  claimItem(jobId: string, itemId: string, owner: string, leaseMs: number, now?: number): Promise<{ ok: boolean; item: ItemRecord }>;
  /** Heartbeat: extends the lease if `owner` still holds it; false when it lost it. */
  renewClaim(jobId: string, itemId: string, owner: string, leaseMs: number, now?: number): Promise<boolean>;
  /** Gives the claim up (the task goes back to the queue), keeping the counts and the booking. */
  releaseClaim(jobId: string, itemId: string, owner: string): Promise<void>;
  /** Counts one attempt (a delivery that sent a request) and returns its number; numbers are never reused. */
  countAttempt(jobId: string, itemId: string): Promise<number>;
  /** Notes that an attempt was refused with a 429 rate limit: it does not use up the item's attempts. */
  countRefusal(jobId: string, itemId: string): Promise<void>;
  /** Keeps (or with null drops) the item's place in the quota's future, while `owner` holds the claim. */
  setBooking(jobId: string, itemId: string, owner: string, bookedAt: number | null): Promise<void>;
  /**
   * A place in the future for one request of `tokens` against `model`'s quota (and the job's own
   * caps): the quota's line advances by what each booking will use, so waiting requests are
   * spread at the rate the quota allows and each waits in the queue, not in a poll.
   */
  bookQuota(r: { model: string; tokens: number; account: QuotaLimits; job?: { jobId: string; rpm?: number; tpm?: number }; now?: number; notBefore?: number }): Promise<number>;
  /** A booked request used `unusedTokens` fewer than it booked (negative: more): the line gives that time back to, or takes it from, those who book next. */
  shortenLine(r: { model: string; unusedTokens: number; account: QuotaLimits; job?: { jobId: string; rpm?: number; tpm?: number } }): Promise<void>;
  /** When the quota's line of bookings ends (epoch ms; at most now when nobody waits). */
  quotaLineEnd(model: string, jobId: string | undefined, now?: number): Promise<number>;

  /** Cost ledger: reserve a call's worst-case cost; refused when committed (spent + reserved) + usd would pass capUsd. On refusal says whether the cap is really reached (spent alone + usd > cap) or only in-flight reservations are in the way. */
  reserveSpend(jobId: string, usd: number, capUsd: number): Promise<{ ok: true } | { ok: false; spentUsd: number; committedUsd: number; capReached: boolean }>;
  /** After the call: spent += actual; committed += actual - reserved. Also used with reserved 0 for costs with no reservation. */
  settleSpend(jobId: string, reservedUsd: number, actualUsd: number): Promise<void>;
  spend(jobId: string): Promise<{ spentUsd: number; committedUsd: number }>;

  /** Records the item's terminal status; idempotent per item (a second call for the same item does not count twice). Returns how many distinct items of the job are finished and whether this call was the one that made it reach `total` (exactly one caller ever gets last:true for a given set, even under concurrency). O(1) in the job's size: no listing. */
  finishItem(jobId: string, itemId: string, status: TerminalStatus, total: number): Promise<{ counted: boolean; finished: number; last: boolean }>;
  /** For retry: the items go back to queued (their claims are cleared too, attempts reset to 0). */
  reopenItems(jobId: string, itemIds: string[]): Promise<void>;

  /** The fleet's rolling measurement of a model's speed (null before any call was measured). */
  modelSpeed(model: string): Promise<{ decodeTokensPerSecond: number | null; prefillTokensPerSecond: number | null; samples: number } | null>;
  /** Folds one call's measured speeds into the rolling figure (an exponential moving average; a lost race loses one sample, nothing more). */
  recordModelSpeed(model: string, seen: { decodeTokensPerSecond?: number; prefillTokensPerSecond?: number }): Promise<void>;

  /** Idempotent submit: the first caller for jobId gets created:true; later callers get the stored record. */
  registerJob(jobId: string, record: { trigger: string; items: number; createdAt: string }): Promise<{ created: boolean; record: JobEntry }>;
  setJobState(jobId: string, state: JobState): Promise<void>;
  /** The job's entry, or null for a job submitted without one (tests that queue tasks by hand). */
  readJobEntry(jobId: string): Promise<JobEntry | null>;

  /** Resumable submit: records that these batches of ten tasks (by index in the job's items) were sent. */
  markTaskBatchesSent(jobId: string, batches: number[]): Promise<void>;
  /** The batches of `batchCount` that a submit of the job already sent (a retried submit skips them). */
  sentTaskBatches(jobId: string, batchCount: number): Promise<Set<number>>;
  /**
   * The finalizer's hold on announcing the end of a job's round (a retry starts a new round):
   * `claimed` when this owner may send the job-ended event now, `sent` when it went already,
   * `held` while another finalizer's lease on it runs.
   */
  claimJobEnd(jobId: string, round: number, owner: string, leaseMs: number, now?: number): Promise<"claimed" | "sent" | "held">;
  /** The event of that round went out: no later finalizer sends it again. */
  markJobEndSent(jobId: string, round: number): Promise<void>;
}

export interface CoordinatorOptions {
  now?: () => number;
  /** How long an item outlives its last write (default 7 days). */
  ttlDays?: number;
  /** Share of each quota kept unused so the provider's sliding windows never trip (default 0.03). */
  headroom?: number;
  /** Optimistic-concurrency rounds on a quota key before giving up for now (default 25). */
  maxConflicts?: number;
}

export const coordKeys = {
  quota: (model: string) => `quota#${model}`,
  jobQuota: (jobId: string) => `quota#job#${jobId}`,
  claim: (jobId: string, itemId: string) => `claim#${jobId}#${itemId}`,
  spend: (jobId: string) => `spend#${jobId}`,
  job: (jobId: string) => `job#${jobId}`,
  speed: (model: string) => `speed#${model}`,
  /** Which batches of a job's tasks submit sent, SENT_CHUNK batches per row. */
  sent: (jobId: string, chunk: number) => `sent#${jobId}#${chunk}`,
  /** The job-ended event of a job's round: who sends it, and whether it went. */
  ended: (jobId: string, round: number) => `ended#${jobId}#${round}`,
};

/** Batch indexes per `sent#` row: a number set of at most this many entries stays far under DynamoDB's 400 KB item. */
const SENT_CHUNK = 1000;

/** Weight of a new sample in the rolling speed figures. */
const SPEED_WEIGHT = 0.2;

/** Money is kept as integer nano-USD: DynamoDB adds decimals exactly, but the bounds are computed in JS floats. */
const NANO = 1e9;
/** Tries of the job count's ADD in finishItem before the item's status is given back. */
const COUNT_TRIES = 5;
const nano = (usd: number) => Math.round(usd * NANO);
const usd = (n: number) => n / NANO;

export function createCoordinator(client: DynamoDBClient, table: string, opts: CoordinatorOptions = {}): Coordinator {
  const clock = opts.now ?? Date.now;
  const ttlS = (opts.ttlDays ?? 7) * 86_400;
  const headroom = opts.headroom ?? DEFAULT_HEADROOM;
  const maxConflicts = opts.maxConflicts ?? 25;
  const expires = () => Math.floor(clock() / 1000) + ttlS;

  const get = async (pk: string): Promise<Row | undefined> => {
    const out = await send(() => client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: pk } }, ConsistentRead: true })));
    return out.Item ? fromItem(out.Item) : undefined;
  };

  /** An UpdateItem; `false` when its condition failed. `set` and `add` name attributes; `values` fill `:placeholders`. */
  const update = async (pk: string, u: Update): Promise<Row | false> => {
    const out = await updateOrOld(pk, u);
    return out.ok ? out.row : false;
  };

  /**
   * An UpdateItem whose refused condition answers with the record that won
   * (ReturnValuesOnConditionCheckFailure), so the caller needs no second round trip. A store that
   * does not send it back (the local emulator, dynalite) costs one consistent read instead.
   */
  const updateOrOld = async (pk: string, u: Update): Promise<{ ok: true; row: Row } | { ok: false; old: Row | undefined }> => {
    const names: Record<string, string> = {};
    const name = (a: string) => ((names[`#${a}`] = a), `#${a}`);
    const values: Record<string, AttributeValue> = { ":expiresAt": toValue(expires()) };
    const set = [`${name("expiresAt")} = :expiresAt`];
    for (const [a, expr] of Object.entries(u.set ?? {})) set.push(`${name(a)} = ${expr}`);
    const adds = Object.entries(u.add ?? {}).map(([a, v]) => ((values[`:add_${a}`] = toValue(v)), `${name(a)} :add_${a}`));
    const removes = (u.remove ?? []).map(name);
    for (const [k, v] of Object.entries(u.values ?? {})) values[k] = toValue(v);
    // Attribute names in conditions and SET right-hand sides are written `#name` by the caller.
    for (const m of `${u.condition ?? ""} ${Object.values(u.set ?? {}).join(" ")}`.matchAll(/#(\w+)/g)) names[m[0]] = m[1]!;
    const expression = [`SET ${set.join(", ")}`, adds.length ? `ADD ${adds.join(", ")}` : "", removes.length ? `REMOVE ${removes.join(", ")}` : ""].join(" ").trim();
    // DynamoDB refuses values no expression uses; a caller may pass some only one branch needs.
    const used = `${expression} ${u.condition ?? ""}`;
    for (const k of Object.keys(values)) if (!new RegExp(`${k}(?!\\w)`).test(used)) delete values[k];
    const input: UpdateItemCommandInput = {
      TableName: table,
      Key: { pk: { S: pk } },
      UpdateExpression: expression,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ConditionExpression: u.condition,
      ReturnValues: u.returns ?? "ALL_NEW",
      ...(u.condition && u.oldOnFailure && { ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const }),
    };
    try {
      const out = await send(() => client.send(new UpdateItemCommand(input)));
      return { ok: true, row: fromItem(out.Attributes ?? {}) };
    } catch (e) {
      if (!isConditionFailed(e)) throw e;
      if (!u.oldOnFailure) return { ok: false, old: undefined };
      const item = (e as { Item?: Record<string, AttributeValue> }).Item;
      return { ok: false, old: item ? fromItem(item) : await get(pk) };
    }
  };

  /**
   * One key's log of planned starts (quota-schedule.ts): read, place the request at the earliest
   * start both windows allow, write back if nobody changed the log meanwhile.
   */
  const reserveKey = async (
    pk: string,
    limits: { rpm?: number; tpm?: number },
    entry: { id: string; tokens: number },
    notBefore: number,
    now: number,
    maxWaitMs: number,
  ): Promise<{ ok: true; startAt: number } | { ok: false; retryAfterMs: number }> => {
    for (let round = 0; round < maxConflicts; round++) {
      const row = await get(pk);
      const version = num(row?.version);
      const log = prune(readLog(row), now, { headroom });
      const startAt = earliestStart(log, limits, entry.tokens, Math.max(now, notBefore), { headroom });
      if (startAt - now > maxWaitMs) return { ok: false, retryAfterMs: Math.max(1, Math.ceil(startAt - now - maxWaitMs)) };
      const written = await writeLog(pk, [...log, { id: entry.id, at: startAt, tokens: entry.tokens }], version, row?.version !== undefined);
      if (written) return { ok: true, startAt };
      // Someone else moved the key: read it again, after a short jittered pause so racers spread out.
      await sleep(Math.random() * Math.min(20, 2 * (round + 1)));
    }
    // Heavy contention: report a short wait instead of spinning on.
    return { ok: false, retryAfterMs: 250 };
  };

  const readLog = (row: Row | undefined): QuotaEntry[] => (typeof row?.log === "string" ? (JSON.parse(row.log) as QuotaEntry[]) : []);

  const writeLog = async (pk: string, log: QuotaEntry[], version: number, exists: boolean): Promise<boolean> =>
    (await update(pk, {
      set: { log: ":log", version: ":next" },
      values: { ":log": JSON.stringify(log), ":next": version + 1, ":version": version },
      condition: exists ? "#version = :version" : "attribute_not_exists(#version)",
      returns: "NONE",
    })) !== false;

  /** Changes (or, with null, removes) a request's entry in a key's log. */
  const editEntry = async (pk: string, id: string, tokens: number | null): Promise<void> => {
    for (let round = 0; round < maxConflicts; round++) {
      const row = await get(pk);
      const log = readLog(row);
      if (!log.some((e) => e.id === id)) return;
      const next = tokens === null ? log.filter((e) => e.id !== id) : log.map((e) => (e.id === id ? { ...e, tokens } : e));
      if (await writeLog(pk, next, num(row?.version), true)) return;
      await sleep(Math.random() * Math.min(20, 2 * (round + 1)));
    }
  };

  const claimKey = coordKeys.claim;

  /** One item of reopenItems. */
  const reopenOne = async (jobId: string, itemId: string): Promise<void> => {
    const pk = coordKeys.claim(jobId, itemId);
    for (let round = 0; round < 5; round++) {
      const row = await get(pk);
      const wasCounted = row !== undefined && isTerminal(statusOf(row));
      // Decrement first, like finishItem errs low: a crash after it leaves the count short
      // (no last:true) rather than one too high (an early last:true).
      if (wasCounted) await update(coordKeys.job(jobId), { add: { finished: -1 }, returns: "NONE" });
      const cleared = await update(pk, {
        set: { attempts: ":zero", refusals: ":zero", status: ":queued" },
        remove: ["owner", "leaseUntil", "bookedAt"],
        values: { ":zero": 0, ":queued": "queued", ":s": statusOf(row ?? {}) },
        condition: row ? "#status = :s" : "attribute_not_exists(#status)",
        returns: "NONE",
      });
      if (cleared !== false) return;
      // A concurrent reopen (or finish) changed the item between our read and write:
      // undo our decrement and take the item again from its new state.
      if (wasCounted) await update(coordKeys.job(jobId), { add: { finished: 1 }, returns: "NONE" });
    }
    throw new InfraError(`coordination store: ${pk} kept changing while being reset`);
  };

  /** What one request takes of a line: its tokens at the TPM's pace, and one request at the RPM's. */
  const lineStepMs = (limits: { rpm?: number; tpm?: number }, tokens: number) => {
    const keep = 1 - headroom;
    return Math.ceil(Math.max(limits.tpm ? (tokens / (limits.tpm * keep)) * 60_000 : 0, limits.rpm ? 60_000 / (limits.rpm * keep) : 0));
  };

  /** Moves the end of one quota key's line of bookings by what a request will use; returns the request's place. */
  const advanceLine = async (pk: string, limits: { rpm?: number; tpm?: number }, tokens: number, now: number): Promise<number> => {
    const stepMs = lineStepMs(limits, tokens);
    for (let round = 0; round < maxConflicts; round++) {
      const row = await get(pk);
      const end = Math.max(num(row?.lineEnd), now);
      const moved = await update(pk, {
        set: { lineEnd: ":next" },
        values: { ":next": end + stepMs, ":old": num(row?.lineEnd) },
        condition: row?.lineEnd === undefined ? "attribute_not_exists(#lineEnd)" : "#lineEnd = :old",
        returns: "NONE",
      });
      if (moved !== false) return end;
      await sleep(Math.random() * Math.min(20, 2 * (round + 1)));
    }
    throw new InfraError(`coordination store: ${pk}'s line of bookings kept changing`);
  };

  return {
    async reserveQuota(r) {
      const now = r.now ?? clock();
      const entry = { id: randomUUID(), tokens: r.tokens };
      const keys: string[] = [];
      let notBefore = now;
      let jobKey: string | undefined;
      if (r.job && (r.job.rpm || r.job.tpm)) {
        jobKey = coordKeys.jobQuota(r.job.jobId);
        const got = await reserveKey(jobKey, { rpm: r.job.rpm, tpm: r.job.tpm }, entry, now, now, r.maxWaitMs);
        if (!got.ok) return got;
        keys.push(jobKey);
        notBefore = got.startAt;
      }
      const accountKey = coordKeys.quota(r.model);
      const got = await reserveKey(accountKey, r.account, entry, notBefore, now, r.maxWaitMs);
      if (!got.ok) {
        // The job's slot goes unused: give it back so the job's next call is not pushed out.
        if (jobKey) await editEntry(jobKey, entry.id, null);
        return got;
      }
      keys.push(accountKey);
      return { ok: true, startAt: got.startAt, ticket: { keys, reservedTokens: r.tokens, entryId: entry.id, startAt: got.startAt } };
    },

    async releaseQuota(ticket) {
      for (const key of ticket.keys) await editEntry(key, ticket.entryId, null);
    },

    async settleQuota(ticket, actualTokens) {
      // The entry keeps its start and takes the billed tokens, as the provider's windows count them.
      for (const key of ticket.keys) await editEntry(key, ticket.entryId, Math.max(0, actualTokens));
    },

    async claimItem(jobId, itemId, owner, leaseMs, now = clock()) {
      const got = await updateOrOld(claimKey(jobId, itemId), {
        set: { owner: ":owner", leaseUntil: ":until", status: ":running", attempts: "if_not_exists(#attempts, :zero)", refusals: "if_not_exists(#refusals, :zero)" },
        add: { deliveries: 1 },
        values: { ":owner": owner, ":until": now + leaseMs, ":zero": 0, ":now": now, ":running": "running", ":queued": "queued" },
        // Missing attributes: a new item, or one released (no lease).
        condition:
          "attribute_not_exists(pk) OR ((attribute_not_exists(#status) OR #status = :queued OR #status = :running) AND (attribute_not_exists(#leaseUntil) OR #leaseUntil < :now OR #owner = :owner))",
        oldOnFailure: true,
      });
      return got.ok ? { ok: true, item: itemRecord(got.row) } : { ok: false, item: itemRecord(got.old ?? {}) };
    },

    async renewClaim(jobId, itemId, owner, leaseMs, now = clock()) {
      const got = await update(claimKey(jobId, itemId), {
        set: { leaseUntil: ":until" },
        values: { ":until": now + leaseMs, ":owner": owner },
        condition: "#owner = :owner",
        returns: "NONE",
      });
      return got !== false;
    },

    async releaseClaim(jobId, itemId, owner) {
      // Losing the condition means someone else holds it now: nothing of ours to give up.
      await update(claimKey(jobId, itemId), {
        set: { status: ":queued" },
        remove: ["owner", "leaseUntil"],
        values: { ":owner": owner, ":queued": "queued", ":running": "running" },
        condition: "#owner = :owner AND #status = :running",
        returns: "NONE",
      });
    },

    async countAttempt(jobId, itemId) {
      const got = await update(claimKey(jobId, itemId), { add: { attempts: 1 }, returns: "UPDATED_NEW" });
      return num(got === false ? undefined : got.attempts);
    },

    async countRefusal(jobId, itemId) {
      await update(claimKey(jobId, itemId), { add: { refusals: 1 }, returns: "NONE" });
    },

    async setBooking(jobId, itemId, owner, bookedAt) {
      await update(claimKey(jobId, itemId), {
        ...(bookedAt === null ? { remove: ["bookedAt"] } : { set: { bookedAt: ":at" } }),
        values: { ":owner": owner, ...(bookedAt !== null && { ":at": bookedAt }) },
        condition: "#owner = :owner",
        returns: "NONE",
      });
    },

    async bookQuota(r) {
      const now = r.now ?? clock();
      // The line starts no earlier than the schedule's first room for the request (`notBefore`):
      // requests already placed in the log come first.
      const from = Math.max(now, r.notBefore ?? now);
      const jobAt = r.job && (r.job.rpm || r.job.tpm) ? await advanceLine(coordKeys.jobQuota(r.job.jobId), { rpm: r.job.rpm, tpm: r.job.tpm }, r.tokens, from) : from;
      const accountAt = await advanceLine(coordKeys.quota(r.model), r.account, r.tokens, from);
      return Math.max(jobAt, accountAt);
    },

    async shortenLine(r) {
      const back = (limits: { tpm?: number }) => (limits.tpm ? Math.floor((r.unusedTokens / (limits.tpm * (1 - headroom))) * 60_000) : 0);
      const keys: [string, number][] = [[coordKeys.quota(r.model), back(r.account)]];
      if (r.job && r.job.tpm) keys.push([coordKeys.jobQuota(r.job.jobId), back(r.job)]);
      // An ADD: no read, no race; a line that already ended stays ended (its end is read as at most now).
      for (const [pk, ms] of keys) if (ms !== 0) await update(pk, { add: { lineEnd: -ms }, values: { ":zero": 0 }, condition: "attribute_exists(#lineEnd) AND #lineEnd > :zero", returns: "NONE" });
    },

    async quotaLineEnd(model, jobId, now = clock()) {
      const [account, job] = await Promise.all([get(coordKeys.quota(model)), jobId ? get(coordKeys.jobQuota(jobId)) : undefined]);
      return Math.max(now, num(account?.lineEnd), num(job?.lineEnd));
    },

    async reserveSpend(jobId, amountUsd, capUsd) {
      const pk = coordKeys.spend(jobId);
      const n = nano(amountUsd);
      const bound = nano(capUsd) - n;
      if (bound >= 0) {
        // No arithmetic in conditions: committed + n <= cap is written committed <= cap - n.
        const got = await update(pk, {
          add: { committed: n },
          values: { ":bound": bound },
          condition: "attribute_not_exists(#committed) OR #committed <= :bound",
          returns: "NONE",
        });
        if (got !== false) return { ok: true };
      }
      const row = await get(pk);
      const spent = num(row?.spent);
      return { ok: false, spentUsd: usd(spent), committedUsd: usd(num(row?.committed)), capReached: spent + n > nano(capUsd) };
    },

    async settleSpend(jobId, reservedUsd, actualUsd) {
      await update(coordKeys.spend(jobId), { add: { spent: nano(actualUsd), committed: nano(actualUsd) - nano(reservedUsd) }, returns: "NONE" });
    },

    async spend(jobId) {
      const row = await get(coordKeys.spend(jobId));
      return { spentUsd: usd(num(row?.spent)), committedUsd: usd(num(row?.committed)) };
    },

    async finishItem(jobId, itemId, status, total) {
      // Two writes, no transaction (the local emulator, dynalite, has none). First the item's
      // record takes its terminal status in one conditional write: exactly one caller per item
      // wins it. Then the winner ADDs 1 to the job's count; each ADD returns a distinct value, so
      // exactly one caller sees `total`. A crash between the two leaves the job's count short, so
      // the job never reports last:true early. An ADD that still fails after a few tries gives the
      // item's status back (to running), so the next delivery counts it afresh.
      const won = await update(claimKey(jobId, itemId), {
        set: { status: ":status" },
        remove: ["bookedAt"],
        values: { ":status": status, ":succeeded": "succeeded", ":failed": "failed", ":skipped": "skipped" },
        condition: "attribute_not_exists(#status) OR NOT (#status IN (:succeeded, :failed, :skipped))",
        returns: "NONE",
      });
      if (won === false) {
        const row = await get(coordKeys.job(jobId));
        return { counted: false, finished: num(row?.finished), last: false };
      }
      let got: Row | false | undefined;
      for (let attempt = 1; got === undefined; attempt++) {
        try {
          got = await update(coordKeys.job(jobId), { add: { finished: 1 }, returns: "UPDATED_NEW" });
        } catch (e) {
          if (attempt < COUNT_TRIES) {
            await sleep(100 * 2 ** attempt);
            continue;
          }
          await update(claimKey(jobId, itemId), { set: { status: ":running" }, values: { ":running": "running" }, returns: "NONE" }).catch(() => undefined);
          throw e;
        }
      }
      const finished = got === false ? 0 : num(got.finished);
      return { counted: true, finished, last: finished === total };
    },

    async reopenItems(jobId, itemIds) {
      for (const itemId of itemIds) await reopenOne(jobId, itemId);
    },

    async modelSpeed(model) {
      const row = await get(coordKeys.speed(model));
      if (!row) return null;
      const pos = (v: Scalar | undefined) => (typeof v === "number" && v > 0 ? v : null);
      return { decodeTokensPerSecond: pos(row.decodeTps), prefillTokensPerSecond: pos(row.prefillTps), samples: num(row.samples) };
    },

    async recordModelSpeed(model, seen) {
      const row = await get(coordKeys.speed(model));
      const mix = (old: Scalar | undefined, x: number | undefined) =>
        x === undefined || !(x > 0) ? old : typeof old === "number" && old > 0 ? old * (1 - SPEED_WEIGHT) + x * SPEED_WEIGHT : x;
      const decode = mix(row?.decodeTps, seen.decodeTokensPerSecond);
      const prefill = mix(row?.prefillTps, seen.prefillTokensPerSecond);
      const set: Record<string, string> = {};
      const values: Record<string, Scalar> = {};
      if (typeof decode === "number") ((set.decodeTps = ":d"), (values[":d"] = decode));
      if (typeof prefill === "number") ((set.prefillTps = ":p"), (values[":p"] = prefill));
      if (!Object.keys(set).length) return;
      await update(coordKeys.speed(model), { set, add: { samples: 1 }, values, returns: "NONE" });
    },

    async registerJob(jobId, record) {
      const got = await update(coordKeys.job(jobId), {
        set: { trigger: ":trigger", items: ":items", createdAt: ":createdAt", state: ":state" },
        values: { ":trigger": record.trigger, ":items": record.items, ":createdAt": record.createdAt, ":state": "submitting" },
        condition: "attribute_not_exists(#trigger)",
      });
      if (got !== false) return { created: true, record: jobRecord(got) };
      const row = await get(coordKeys.job(jobId));
      return { created: false, record: jobRecord(row ?? {}) };
    },

    async setJobState(jobId, state) {
      await update(coordKeys.job(jobId), { set: { state: ":state" }, values: { ":state": state }, returns: "NONE" });
    },

    async readJobEntry(jobId) {
      const row = await get(coordKeys.job(jobId));
      return row?.trigger === undefined ? null : jobRecord(row);
    },

    async markTaskBatchesSent(jobId, batches) {
      const byChunk = new Map<number, number[]>();
      for (const b of batches) byChunk.set(Math.floor(b / SENT_CHUNK), [...(byChunk.get(Math.floor(b / SENT_CHUNK)) ?? []), b]);
      for (const [chunk, list] of byChunk) {
        // A number set: ADD is idempotent per batch, so a mark repeated by a retry changes nothing.
        await send(() =>
          client.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { pk: { S: coordKeys.sent(jobId, chunk) } },
              UpdateExpression: "SET #expiresAt = :expiresAt ADD #batches :batches",
              ExpressionAttributeNames: { "#expiresAt": "expiresAt", "#batches": "batches" },
              ExpressionAttributeValues: { ":expiresAt": toValue(expires()), ":batches": { NS: list.map(String) } },
            }),
          ),
        );
      }
    },

    async sentTaskBatches(jobId, batchCount) {
      const chunks = Math.ceil(batchCount / SENT_CHUNK);
      const sent = new Set<number>();
      await Promise.all(
        Array.from({ length: chunks }, async (_, chunk) => {
          const out = await send(() => client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: coordKeys.sent(jobId, chunk) } }, ConsistentRead: true })));
          for (const n of out.Item?.batches?.NS ?? []) sent.add(Number(n));
        }),
      );
      return sent;
    },

    async claimJobEnd(jobId, round, owner, leaseMs, now = clock()) {
      const pk = coordKeys.ended(jobId, round);
      const got = await update(pk, {
        set: { owner: ":owner", leaseUntil: ":until" },
        values: { ":owner": owner, ":until": now + leaseMs, ":now": now, ":true": true },
        condition: "attribute_not_exists(pk) OR (NOT #sent = :true AND (#leaseUntil < :now OR #owner = :owner))",
        returns: "NONE",
      });
      if (got !== false) return "claimed";
      const row = await get(pk);
      return row?.sent === true ? "sent" : "held";
    },

    async markJobEndSent(jobId, round) {
      await update(coordKeys.ended(jobId, round), { set: { sent: ":true" }, values: { ":true": true }, returns: "NONE" });
    },
  };
}

// ---------------------------------------------------------------------------------------------

type Scalar = string | number | boolean;
type Row = Record<string, Scalar | undefined>;

interface Update {
  /** attribute → right-hand side (`:value` or an expression with `#names`). */
  set?: Record<string, string>;
  add?: Record<string, number>;
  remove?: string[];
  values?: Record<string, Scalar>;
  condition?: string;
  returns?: "NONE" | "ALL_NEW" | "UPDATED_NEW";
  /** On a refused condition, return the record as it stood. */
  oldOnFailure?: boolean;
}

function toValue(v: Scalar): AttributeValue {
  if (typeof v === "number") return { N: String(v) };
  if (typeof v === "boolean") return { BOOL: v };
  return { S: v };
}

function fromItem(item: Record<string, AttributeValue>): Row {
  const row: Row = {};
  for (const [k, v] of Object.entries(item)) row[k] = v.N !== undefined ? Number(v.N) : v.BOOL !== undefined ? v.BOOL : v.S;
  return row;
}

function num(v: Scalar | undefined): number {
  return typeof v === "number" ? v : 0;
}

const STATUSES: readonly ItemStatus[] = ["queued", "running", "succeeded", "failed", "skipped"];
const statusOf = (row: Row): ItemStatus => (STATUSES.includes(row.status as ItemStatus) ? (row.status as ItemStatus) : "queued");

function itemRecord(row: Row): ItemRecord {
  const leaseUntil = num(row.leaseUntil);
  return {
    status: statusOf(row),
    owner: typeof row.owner === "string" ? row.owner : null,
    leaseUntil,
    attempts: num(row.attempts),
    refusals: num(row.refusals),
    deliveries: num(row.deliveries),
    bookedAt: typeof row.bookedAt === "number" ? row.bookedAt : null,
  };
}

function jobRecord(row: Row): JobEntry {
  return { trigger: String(row.trigger ?? ""), items: num(row.items), createdAt: String(row.createdAt ?? ""), state: String(row.state ?? "") };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isConditionFailed(e: unknown): boolean {
  return (e as { name?: string }).name === "ConditionalCheckFailedException";
}

/**
 * Runs one DynamoDB call. A refused condition passes through for the caller to decide; any other
 * fault (throttling, 5xx, network, a missing table) after the SDK's own retries is the
 * infrastructure's: the worker hands the task back to the queue without using an attempt.
 */
async function send<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (isConditionFailed(e)) throw e;
    const err = e as { name?: string; message?: string };
    throw new InfraError(`coordination store: ${err.name ?? "error"}: ${err.message ?? String(e)}`, { cause: e });
  }
}
