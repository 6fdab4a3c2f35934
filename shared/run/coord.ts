import { randomUUID } from "node:crypto";
import { GetItemCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClient, type UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import { LongdocError } from "../errors.ts";
import { DEFAULT_HEADROOM, earliestStart, prune, type QuotaEntry } from "./quota-schedule.ts";

/**
 * The fleet's coordination store: one DynamoDB table (hash key `pk`, TTL on `expiresAt`) shared
 * by every worker and every job. One item per thing that needs an atomic decision:
 *
 * - `quota#<model>`, `quota#job#<jobId>`: pacing of model calls (tat, version)
 * - `claim#<jobId>#<itemId>`: who runs an item (owner, leaseUntil, attempts, done, counted)
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

/** `sending`: the job record is written and its tasks are going out (workers run them as they come). */
export type JobState = "submitting" | "sending" | "submitted" | "failed" | "interrupted" | "running" | "done";
export interface JobRecord {
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

  /** Before the model call. ok:false when another owner holds a live lease (a concurrent duplicate delivery) or the item is done. An expired lease is taken over. */
  claimItem(
    jobId: string,
    itemId: string,
    owner: string,
    leaseMs: number,
    now?: number,
  ): Promise<{ ok: true; attempts: number } | { ok: false; owner: string; leaseUntil: number; done: boolean }>;
  /** Heartbeat: extends the lease if `owner` still holds it; false when it lost it. */
  renewClaim(jobId: string, itemId: string, owner: string, leaseMs: number, now?: number): Promise<boolean>;
  /** Gives the claim up (the task goes back to the queue to wait), keeping the attempt count. */
  releaseClaim(jobId: string, itemId: string, owner: string): Promise<void>;
  /** Counts one real model attempt for the item (ADD 1), returns the count after it. */
  countAttempt(jobId: string, itemId: string): Promise<number>;
  /** Takes back one counted attempt: a delivery the provider refused with a 429 is not an attempt. */
  uncountAttempt(jobId: string, itemId: string): Promise<void>;

  /** Cost ledger: reserve a call's worst-case cost; refused when committed (spent + reserved) + usd would pass capUsd. On refusal says whether the cap is really reached (spent alone + usd > cap) or only in-flight reservations are in the way. */
  reserveSpend(jobId: string, usd: number, capUsd: number): Promise<{ ok: true } | { ok: false; spentUsd: number; committedUsd: number; capReached: boolean }>;
  /** After the call: spent += actual; committed += actual - reserved. Also used with reserved 0 for costs with no reservation. */
  settleSpend(jobId: string, reservedUsd: number, actualUsd: number): Promise<void>;
  spend(jobId: string): Promise<{ spentUsd: number; committedUsd: number }>;

  /** Records that an item has its terminal result; idempotent per item (a second call for the same item does not count twice). Returns how many distinct items of the job are finished and whether this call was the one that made it reach `total` (exactly one caller ever gets last:true for a given set, even under concurrency). O(1) in the job's size: no listing. */
  markFinished(jobId: string, itemId: string, total: number): Promise<{ counted: boolean; finished: number; last: boolean }>;
  /** For retry: the items go back to unfinished (their claims are cleared too, attempts reset to 0). */
  unmarkFinished(jobId: string, itemIds: string[]): Promise<void>;

  /** The fleet's rolling measurement of a model's speed (null before any call was measured). */
  modelSpeed(model: string): Promise<{ decodeTokensPerSecond: number | null; prefillTokensPerSecond: number | null; samples: number } | null>;
  /** Folds one call's measured speeds into the rolling figure (an exponential moving average; a lost race loses one sample, nothing more). */
  recordModelSpeed(model: string, seen: { decodeTokensPerSecond?: number; prefillTokensPerSecond?: number }): Promise<void>;

  /** Idempotent submit: the first caller for jobId gets created:true; later callers get the stored record. */
  registerJob(jobId: string, record: { trigger: string; items: number; createdAt: string }): Promise<{ created: boolean; record: JobRecord }>;
  setJobState(jobId: string, state: JobState): Promise<void>;
  /** The job's record, or null for a job submitted without one (older runs, tests that queue tasks by hand). */
  readJob(jobId: string): Promise<JobRecord | null>;

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
/** Tries of the job count's ADD in markFinished before the item's claim flag is taken back. */
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
    };
    try {
      const out = await send(() => client.send(new UpdateItemCommand(input)));
      return fromItem(out.Attributes ?? {});
    } catch (e) {
      if (isConditionFailed(e)) return false;
      throw e;
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

  /** One item of unmarkFinished. */
  const unmarkOne = async (jobId: string, itemId: string): Promise<void> => {
    const pk = coordKeys.claim(jobId, itemId);
    for (let round = 0; round < 5; round++) {
      const row = await get(pk);
      const wasCounted = row?.counted === true;
      // Decrement first, like markFinished errs low: a crash after it leaves the count short
      // (no last:true) rather than one too high (an early last:true).
      if (wasCounted) await update(coordKeys.job(jobId), { add: { finished: -1 }, returns: "NONE" });
      const cleared = await update(pk, {
        set: { attempts: ":zero" },
        remove: ["done", "counted", "owner", "leaseUntil"],
        values: { ":zero": 0, ":true": true },
        condition: wasCounted ? "#counted = :true" : "attribute_not_exists(#counted) OR NOT #counted = :true",
        returns: "NONE",
      });
      if (cleared !== false) return;
      // A concurrent unmark (or markFinished) changed the item between our read and write:
      // undo our decrement and take the item again from its new state.
      if (wasCounted) await update(coordKeys.job(jobId), { add: { finished: 1 }, returns: "NONE" });
    }
    throw new LongdocError("internal", `coordination store: ${pk} kept changing while being reset`, { retryable: true });
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
      const pk = claimKey(jobId, itemId);
      for (let round = 0; round < 3; round++) {
        const got = await update(pk, {
          set: { owner: ":owner", leaseUntil: ":until", attempts: "if_not_exists(#attempts, :zero)" },
          values: { ":owner": owner, ":until": now + leaseMs, ":zero": 0, ":now": now, ":true": true },
          // Missing attributes: an item made by countAttempt or released has no lease.
          condition:
            "attribute_not_exists(pk) OR (NOT #done = :true AND (attribute_not_exists(#leaseUntil) OR #leaseUntil < :now OR #owner = :owner))",
        });
        if (got !== false) return { ok: true, attempts: num(got.attempts) };
        const row = await get(pk);
        if (!row) continue; // Gone meanwhile (cannot happen without a delete); try again.
        const done = row.done === true;
        const leaseUntil = num(row.leaseUntil);
        if (done || (typeof row.owner === "string" && row.owner !== owner && leaseUntil >= now)) {
          return { ok: false, owner: typeof row.owner === "string" ? row.owner : "", leaseUntil, done };
        }
        // The holder released or the lease ran out between the two calls: try again.
      }
      throw new LongdocError("internal", `coordination store: claim of ${pk} kept changing under us`, { retryable: true });
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
      await update(claimKey(jobId, itemId), { remove: ["owner", "leaseUntil"], values: { ":owner": owner }, condition: "#owner = :owner", returns: "NONE" });
    },

    async countAttempt(jobId, itemId) {
      const got = await update(claimKey(jobId, itemId), { add: { attempts: 1 }, returns: "UPDATED_NEW" });
      return num(got === false ? undefined : got.attempts);
    },

    async uncountAttempt(jobId, itemId) {
      await update(claimKey(jobId, itemId), { add: { attempts: -1 }, values: { ":zero": 0 }, condition: "#attempts > :zero", returns: "NONE" });
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

    async markFinished(jobId, itemId, total) {
      // Two writes, no transaction (dynalite has none). First the claim item takes done and
      // counted in one conditional write: that is the idempotency, exactly one caller per item
      // wins it. Then the winner ADDs 1 to the job's count; each ADD returns a distinct value, so
      // exactly one caller sees `total`. A crash (or lost response) between the two loses that
      // item's count: the job then never reports last:true rather than reporting it early,
      // which would finish a run with items still going. The opposite order would double
      // count on a retry. A count can be rebuilt from the claim items' `counted` flags.
      //
      // An error on the ADD (a throttle or 5xx that outlasted the SDK's own retries) would leave the
      // item counted on its claim but not in the job: the job would never finish. So the ADD is
      // tried again here, and if it still fails the claim's flag is taken back, so the next
      // delivery counts the item afresh. Either retry repeats an ADD only when the store reported
      // an error, which is the SDK's own retry rule.
      const won = await update(claimKey(jobId, itemId), {
        set: { done: ":true", counted: ":true" },
        values: { ":true": true },
        condition: "attribute_not_exists(#counted) OR NOT #counted = :true",
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
            await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
            continue;
          }
          await update(claimKey(jobId, itemId), { set: { counted: ":false" }, values: { ":false": false }, returns: "NONE" }).catch(() => undefined);
          throw e;
        }
      }
      const finished = got === false ? 0 : num(got.finished);
      return { counted: true, finished, last: finished === total };
    },

    async unmarkFinished(jobId, itemIds) {
      for (const itemId of itemIds) await unmarkOne(jobId, itemId);
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

    async readJob(jobId) {
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

function jobRecord(row: Row): JobRecord {
  return { trigger: String(row.trigger ?? ""), items: num(row.items), createdAt: String(row.createdAt ?? ""), state: String(row.state ?? "") };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isConditionFailed(e: unknown): boolean {
  return (e as { name?: string }).name === "ConditionalCheckFailedException";
}

const THROTTLED = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "InternalServerError",
  "ServiceUnavailable",
  "LimitExceededException",
]);

/**
 * Runs one DynamoDB call. A refused condition passes through for the caller to decide; throttling,
 * 5xx and network faults (after the SDK's own retries) become retryable errors, so the worker
 * hands the task back to the queue; anything else (missing table, bad request) is not retryable.
 */
async function send<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (isConditionFailed(e)) throw e;
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    const retryable = THROTTLED.has(err.name ?? "") || (status !== undefined && status >= 500) || status === undefined;
    throw new LongdocError("internal", `coordination store: ${err.name ?? "error"}: ${err.message ?? String(e)}`, { retryable, cause: e });
  }
}
