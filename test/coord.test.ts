// The coordination store against a real DynamoDB emulator (dynalite, in process): the races
// are real concurrent HTTP requests, decided by DynamoDB's conditional writes.
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InfraError, isInfraFault, LongdocError } from "../shared/errors.ts";
import { createCoordTable, startLocalDynamo, type LocalDynamo } from "../shared/local/dynamo.ts";
import { dynamoClient } from "../shared/local/clients.ts";
import { createMemoryCoordinator } from "../shared/local/memory-coord.ts";
import { coordKeys, createCoordinator, type Coordinator } from "../shared/run/coord.ts";

let dynamo: LocalDynamo;
let n = 0;
/** A fresh job id per test, so tests share the table without seeing each other. */
const newJob = () => `job-${++n}`;

beforeAll(async () => {
  dynamo = await startLocalDynamo();
});
afterAll(async () => {
  await dynamo?.stop();
});

describe("local table", () => {
  it("creates the table idempotently and stamps items with a TTL in epoch seconds", async () => {
    await createCoordTable(dynamo.client, dynamo.table);
    const clock = () => 1_700_000_000_000;
    const c = createCoordinator(dynamo.client, dynamo.table, { now: clock, ttlDays: 2 });
    const jobId = newJob();
    await c.countAttempt(jobId, "a");
    const item = (await dynamo.client.send(new GetItemCommand({ TableName: dynamo.table, Key: { pk: { S: coordKeys.claim(jobId, "a") } } }))).Item;
    expect(item?.expiresAt?.N).toBe(String(1_700_000_000 + 2 * 86_400));
  });
});

/** The rules, checked on both stores: the in-memory one the unit tests use must decide as DynamoDB does. */
describe.each([
  { store: "DynamoDB (dynalite)", make: () => createCoordinator(dynamo.client, dynamo.table) },
  { store: "in memory", make: () => createMemoryCoordinator() },
])("coordinator rules on $store", ({ make }) => {
  let coord: Coordinator;
  beforeAll(() => {
    coord = make();
  });

  describe("claims", () => {
    it("lets exactly one of two concurrent owners claim an item; the loser's renew fails", async () => {
      const jobId = newJob();
      const [a, b] = await Promise.all([coord.claimItem(jobId, "x", "A", 60_000, 1000), coord.claimItem(jobId, "x", "B", 60_000, 1000)]);
      expect([a.ok, b.ok].filter(Boolean)).toHaveLength(1);
      const [winner, loser] = a.ok ? ["A", "B"] : ["B", "A"];
      const lost = a.ok ? b : a;
      // The refusal carries the record that won, with no second read.
      expect(lost).toMatchObject({ ok: false, item: { status: "running", owner: winner, leaseUntil: 61_000, deliveries: 1 } });
      expect(await coord.renewClaim(jobId, "x", loser, 60_000, 2000)).toBe(false);
      expect(await coord.renewClaim(jobId, "x", winner, 60_000, 2000)).toBe(true);
      // Renewed to 62 000: still held at 61 500.
      expect((await coord.claimItem(jobId, "x", loser, 60_000, 61_500)).ok).toBe(false);
    });

    it("takes over an expired lease and keeps the attempt count", async () => {
      const jobId = newJob();
      expect(await coord.claimItem(jobId, "x", "A", 1000, 0)).toMatchObject({ ok: true, item: { attempts: 0, deliveries: 1 } });
      expect(await coord.countAttempt(jobId, "x")).toBe(1);
      expect(await coord.claimItem(jobId, "x", "B", 1000, 1001)).toMatchObject({ ok: true, item: { attempts: 1, deliveries: 2, owner: "B" } });
      expect(await coord.renewClaim(jobId, "x", "A", 1000, 1002)).toBe(false);
      // The same owner may claim again (a redelivery to the same worker).
      expect(await coord.claimItem(jobId, "x", "B", 1000, 1003)).toMatchObject({ ok: true, item: { attempts: 1, deliveries: 3 } });
    });

    it("release lets another owner in at once; a release by a non-holder changes nothing", async () => {
      const jobId = newJob();
      await coord.claimItem(jobId, "x", "A", 60_000, 0);
      await coord.countAttempt(jobId, "x");
      await coord.releaseClaim(jobId, "x", "B");
      expect((await coord.claimItem(jobId, "x", "B", 60_000, 10)).ok).toBe(false);
      await coord.releaseClaim(jobId, "x", "A");
      expect(await coord.claimItem(jobId, "x", "B", 60_000, 10)).toMatchObject({ ok: true, item: { attempts: 1, status: "running" } });
    });

    it("refuses a claim on a finished item, even with an expired lease", async () => {
      const jobId = newJob();
      await coord.claimItem(jobId, "x", "A", 1000, 0);
      await coord.finishItem(jobId, "x", "succeeded", 1);
      expect(await coord.claimItem(jobId, "x", "B", 1000, 5000)).toMatchObject({ ok: false, item: { status: "succeeded", owner: "A" } });
    });

    it("counts attempts and refusals apart, and never reuses an attempt's number", async () => {
      const jobId = newJob();
      await coord.claimItem(jobId, "x", "A", 60_000, 0);
      expect(await coord.countAttempt(jobId, "x")).toBe(1);
      await coord.countRefusal(jobId, "x");
      expect(await coord.countAttempt(jobId, "x")).toBe(2);
      await coord.releaseClaim(jobId, "x", "A");
      expect(await coord.claimItem(jobId, "x", "B", 60_000, 1)).toMatchObject({ ok: true, item: { attempts: 2, refusals: 1, deliveries: 2, status: "running" } });
    });

    it("keeps an item's place in the quota's line across deliveries, until the item finishes", async () => {
      const jobId = newJob();
      await coord.claimItem(jobId, "x", "A", 60_000, 0);
      await coord.setBooking(jobId, "x", "B", 5_000); // not the holder: no change
      await coord.setBooking(jobId, "x", "A", 9_000);
      await coord.releaseClaim(jobId, "x", "A");
      expect(await coord.claimItem(jobId, "x", "B", 60_000, 1)).toMatchObject({ ok: true, item: { bookedAt: 9_000 } });
      await coord.finishItem(jobId, "x", "succeeded", 1);
      expect((await coord.claimItem(jobId, "x", "C", 60_000, 2)).item.bookedAt).toBeNull();
    });
  });

  describe("cost ledger", () => {
    it("admits exactly 25 of 40 concurrent 0.01 reservations under a 0.25 cap", async () => {
      const jobId = newJob();
      const out = await Promise.all(Array.from({ length: 40 }, () => coord.reserveSpend(jobId, 0.01, 0.25)));
      expect(out.filter((o) => o.ok)).toHaveLength(25);
      for (const o of out.filter((o) => !o.ok)) expect(o).toMatchObject({ capReached: false, spentUsd: 0 });
      expect(await coord.spend(jobId)).toEqual({ spentUsd: 0, committedUsd: 0.25 });

      // Ten calls cost half their reservation: 0.05 back, so five more fit.
      for (let i = 0; i < 10; i++) await coord.settleSpend(jobId, 0.01, 0.005);
      expect(await coord.spend(jobId)).toEqual({ spentUsd: 0.05, committedUsd: 0.2 });
      const more = await Promise.all(Array.from({ length: 8 }, () => coord.reserveSpend(jobId, 0.01, 0.25)));
      expect(more.filter((o) => o.ok)).toHaveLength(5);
    });

    it("says capReached only when spending alone passes the cap", async () => {
      const jobId = newJob();
      expect(await coord.reserveSpend(jobId, 0.2, 0.25)).toEqual({ ok: true });
      // In-flight reservation in the way: not the cap.
      expect(await coord.reserveSpend(jobId, 0.1, 0.25)).toEqual({ ok: false, spentUsd: 0, committedUsd: 0.2, capReached: false });
      await coord.settleSpend(jobId, 0.2, 0.2);
      expect(await coord.reserveSpend(jobId, 0.1, 0.25)).toEqual({ ok: false, spentUsd: 0.2, committedUsd: 0.2, capReached: true });
      // A cost with no reservation (reserved 0) still counts.
      await coord.settleSpend(jobId, 0, 0.01);
      expect(await coord.spend(jobId)).toEqual({ spentUsd: 0.21, committedUsd: 0.21 });
      // More than the cap on its own: refused without a write.
      expect(await coord.reserveSpend(newJob(), 0.3, 0.25)).toMatchObject({ ok: false, capReached: true });
    });
  });

  describe("finished count", () => {
    it("counts 20 items once each under 50 concurrent marks, with exactly one last", async () => {
      const jobId = newJob();
      const items = Array.from({ length: 20 }, (_, i) => `item-${i}`);
      const calls = Array.from({ length: 50 }, (_, i) => items[i % 20]!);
      const out = await Promise.all(calls.map((id) => coord.finishItem(jobId, id, "succeeded", 20)));
      expect(out.filter((o) => o.counted)).toHaveLength(20);
      expect(out.filter((o) => !o.counted)).toHaveLength(30);
      expect(out.filter((o) => o.last)).toHaveLength(1);
      expect(out.find((o) => o.last)).toEqual({ counted: true, finished: 20, last: true });
      expect(out.every((o) => o.finished <= 20)).toBe(true);
      expect(await coord.finishItem(jobId, "item-3", "failed", 20)).toEqual({ counted: false, finished: 20, last: false });
    });

    it("reopenItems takes items back: the count drops, they count again, claims and attempts are reset", async () => {
      const jobId = newJob();
      for (const id of ["a", "b", "c"]) {
        await coord.claimItem(jobId, id, "W", 60_000, 0);
        await coord.countAttempt(jobId, id);
        await coord.finishItem(jobId, id, "failed", 3);
      }
      // "never" was never finished: it must not lower the count.
      await coord.reopenItems(jobId, ["b", "c", "never"]);
      expect(await coord.finishItem(jobId, "a", "failed", 3)).toEqual({ counted: false, finished: 1, last: false });
      expect(await coord.claimItem(jobId, "b", "V", 60_000, 1)).toMatchObject({ ok: true, item: { attempts: 0 } });
      // Twice over (a retry command run again) changes nothing more.
      await Promise.all([coord.reopenItems(jobId, ["c"]), coord.reopenItems(jobId, ["c"])]);
      expect(await coord.finishItem(jobId, "b", "succeeded", 3)).toEqual({ counted: true, finished: 2, last: false });
      expect(await coord.finishItem(jobId, "c", "succeeded", 3)).toEqual({ counted: true, finished: 3, last: true });
    });
  });

  describe("quota: a log of planned starts per model", () => {
    /** Most starts in any window of `width` ms. */
    const densest = (starts: number[], width: number) => Math.max(...starts.map((s) => starts.filter((t) => t > s - width && t <= s).length));

    it("never plans more than RPM/60 starts in any second, nor RPM in a minute", async () => {
      const model = `rps-${newJob()}`;
      const account = { rpm: 120, tpm: 10_000_000 }; // 2 a second
      const out = await Promise.all(Array.from({ length: 10 }, () => coord.reserveQuota({ model, tokens: 100, account, maxWaitMs: 60_000, now: 1_000_000 })));
      const starts = out.map((o) => (o.ok ? o.startAt : NaN)).sort((a, b) => a - b);
      expect(starts.every(Number.isFinite)).toBe(true);
      expect(starts[0]).toBe(1_000_000);
      // The provider's one-second window, widened by the margin for network and clock jitter.
      expect(densest(starts, 1_200)).toBeLessThanOrEqual(2);
      expect(starts.at(-1)! - starts[0]!).toBeLessThan(5 * 1_250);
    });

    it("refuses starts beyond maxWaitMs, saying how long to wait; after that wait the slot is there", async () => {
      const model = `wait-${newJob()}`;
      const account = { rpm: 60, tpm: 10_000_000 }; // 1 a second
      const out = await Promise.all(Array.from({ length: 4 }, () => coord.reserveQuota({ model, tokens: 100, account, maxWaitMs: 500, now: 5_000 })));
      const ok = out.filter((o) => o.ok);
      expect(ok).toHaveLength(1);
      const refused = out.find((o) => !o.ok);
      if (!refused || refused.ok) throw new Error("expected a refusal");
      expect(refused.retryAfterMs).toBe(1_201 - 500);
      const later = await coord.reserveQuota({ model, tokens: 100, account, maxWaitMs: 500, now: 5_000 + refused.retryAfterMs });
      expect(later).toMatchObject({ ok: true, startAt: 5_000 + 1_201 });
    });

    it("keeps the per-second token share: a request waits until the last second has room for it; settling records the real tokens", async () => {
      const model = `tps-${newJob()}`;
      const account = { rpm: 6_000, tpm: 60_000 }; // 1,000 tokens a second, 980 with headroom
      const a = await coord.reserveQuota({ model, tokens: 600, account, maxWaitMs: 60_000, now: 0 });
      const b = await coord.reserveQuota({ model, tokens: 600, account, maxWaitMs: 60_000, now: 0 });
      expect(a).toMatchObject({ ok: true, startAt: 0 });
      // 600 + 600 is over the second's 980: the next start is once the first left the window.
      expect(b).toMatchObject({ ok: true, startAt: 1_201 });
      if (!b.ok) throw new Error("refused");
      // b really used 100 tokens: a 600-token request now fits beside it.
      await coord.settleQuota(b.ticket, 100);
      expect(await coord.reserveQuota({ model, tokens: 600, account, maxWaitMs: 60_000, now: 0 })).toMatchObject({ ok: true, startAt: 1_201 });
      // A request larger than the whole second goes only into an empty one.
      const big = await coord.reserveQuota({ model, tokens: 5_000, account, maxWaitMs: 60_000, now: 0 });
      expect(big).toMatchObject({ ok: true, startAt: 1_201 + 1_201 });
    });

    it("applies a job's own caps inside the account's, and gives the job's slot back when the account refuses", async () => {
      const jobId = newJob();
      const model = `job-${jobId}`;
      const account = { rpm: 600, tpm: 10_000_000 };
      const job = { jobId, rpm: 60 }; // one a second for this job
      const a = await coord.reserveQuota({ model, tokens: 10, account, job, maxWaitMs: 5_000, now: 0 });
      const b = await coord.reserveQuota({ model, tokens: 10, account, job, maxWaitMs: 5_000, now: 0 });
      expect(a).toMatchObject({ ok: true, startAt: 0 });
      expect(b).toMatchObject({ ok: true, startAt: 1_201 });
      if (!a.ok) throw new Error("refused");
      expect(a.ticket.keys).toEqual([`quota#job#${jobId}`, `quota#${model}`]);

      // Another job fills the account's minute: this job's next call is refused and costs it nothing.
      await Promise.all(Array.from({ length: 5 }, () => coord.reserveQuota({ model, tokens: 10, account: { rpm: 6, tpm: 1e9 }, maxWaitMs: 600_000, now: 0 })));
      const refused = await coord.reserveQuota({ model, tokens: 10, account: { rpm: 6, tpm: 1e9 }, job, maxWaitMs: 5_000, now: 0 });
      expect(refused.ok).toBe(false);
      // The refused call's job slot was given back: on an idle account the job's next start is its third second, not its fourth.
      expect(await coord.reserveQuota({ model: `${model}-idle`, tokens: 10, account, job, maxWaitMs: 5_000, now: 0 })).toMatchObject({ ok: true, startAt: 2 * 1_201 });
    });
  });

  describe("quota: the line of bookings", () => {
    it("places each booking one request's share after the last, per key, and says where the line ends", async () => {
      const jobId = newJob();
      const model = `line-${jobId}`;
      const account = { rpm: 60, tpm: 1e9 }; // a request's share: 60 s / (60 × 0.98) → 1,021 ms
      const at: number[] = [];
      for (let i = 0; i < 3; i++) at.push(await coord.bookQuota({ model, tokens: 10, account, now: 0 }));
      expect(at).toEqual([0, 1_021, 2_042]);
      expect(await coord.quotaLineEnd(model, undefined, 0)).toBe(3_063);
      // A line that ended in the past starts at now.
      expect(await coord.quotaLineEnd(model, undefined, 10_000)).toBe(10_000);
      expect(await coord.bookQuota({ model, tokens: 10, account, now: 10_000 })).toBe(10_000);
      // A job's own, slower cap has its own line; the later of the two places the request.
      const job = { jobId, rpm: 30 }; // 2,041 ms a request
      expect(await coord.bookQuota({ model, tokens: 10, account, job, now: 10_000 })).toBe(11_021);
      expect(await coord.bookQuota({ model, tokens: 10, account, job, now: 10_000 })).toBe(12_042);
      expect(await coord.quotaLineEnd(model, jobId, 10_000)).toBe(10_000 + 2 * 2_041);
    });
  });

  describe("model speed", () => {
    it("starts unknown, then folds each measurement into a rolling figure", async () => {
      const model = `speed-${newJob()}`;
      expect(await coord.modelSpeed(model)).toBeNull();
      await coord.recordModelSpeed(model, { decodeTokensPerSecond: 100 });
      expect(await coord.modelSpeed(model)).toEqual({ decodeTokensPerSecond: 100, prefillTokensPerSecond: null, samples: 1 });
      await coord.recordModelSpeed(model, { decodeTokensPerSecond: 200, prefillTokensPerSecond: 1_000 });
      const seen = await coord.modelSpeed(model);
      expect(seen?.decodeTokensPerSecond).toBeCloseTo(120, 9);
      expect(seen).toMatchObject({ prefillTokensPerSecond: 1_000, samples: 2 });
      // A call that measured nothing leaves an unmeasured model unknown.
      const other = `speed-${newJob()}`;
      await coord.recordModelSpeed(other, { decodeTokensPerSecond: 0 });
      expect(await coord.modelSpeed(other)).toBeNull();
    });
  });

  describe("jobs", () => {
    it("registers a job once; a second submit gets the stored record", async () => {
      const jobId = newJob();
      const record = { trigger: "schedule", items: 12, createdAt: "2026-01-01T00:00:00.000Z" };
      expect(await coord.registerJob(jobId, record)).toEqual({ created: true, record: { ...record, state: "submitting" } });
      expect(await coord.registerJob(jobId, { trigger: "upload", items: 3, createdAt: "2026-02-02T00:00:00.000Z" })).toEqual({
        created: false,
        record: { ...record, state: "submitting" },
      });
      await coord.setJobState(jobId, "submitted");
      expect((await coord.registerJob(jobId, record)).record.state).toBe("submitted");
    });

    it("registers once under concurrent submits", async () => {
      const jobId = newJob();
      const out = await Promise.all(Array.from({ length: 8 }, (_, i) => coord.registerJob(jobId, { trigger: `t${i}`, items: i, createdAt: "c" })));
      expect(out.filter((o) => o.created)).toHaveLength(1);
      expect(new Set(out.map((o) => o.record.trigger)).size).toBe(1);
    });
  });
});

describe("errors", () => {
  it("reports an unreachable store and a missing table as the infrastructure's faults, with the store's words", async () => {
    const down = createCoordinator(dynamoClient("http://127.0.0.1:9"), "longdoc-coord");
    const e1 = await down.spend("x").catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(InfraError);
    expect(isInfraFault(e1)).toBe(true);
    const missing = createCoordinator(dynamo.client, "no-such-table");
    const e2 = await missing.spend("x").catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(InfraError);
    expect((e2 as Error).message).toMatch(/coordination store: ResourceNotFoundException/);
    // The item's and the model's faults are not the infrastructure's.
    expect(isInfraFault(new LongdocError("input_too_long", "x"))).toBe(false);
  });
});
