// Waiting is cheap and bounded: an item that cannot start for lack of quota books a place at the
// end of the quota's line and waits in the queue until then, its documents unread, however long
// the wait. A fake clock stands in for hours; the stores and the simulator are the real local ones.
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { coordKeys, createCoordinator } from "../shared/run/coord.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import type { TaskMessage } from "../shared/run/queue.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import type { WorkerDeps } from "../shared/worker/context.ts";
import { createWorkerDeps } from "../shared/worker/deps.ts";
import { ARRIVE_EARLY_MS } from "../shared/worker/guards.ts";
import { runTask } from "../shared/worker/lifecycle.ts";
import { MAX_VISIBILITY_S, ReturnToQueue } from "../shared/worker/records.ts";
import { useLoopback } from "./helpers/loopback.ts";

const HOUR = 3_600_000;

describe("an item waiting for quota", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 30 } });
  let store: ObjectStore;
  beforeAll(async () => {
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
  });

  /** One item submitted, a worker on a clock the test moves, and a delivery that says how it ended. */
  async function setUp(name: string, t0: number) {
    const doc = `inputs/${name}/report.md`;
    await store.put(doc, "# Report\n\n" + "Revenue rose in every segment. ".repeat(100), "text/markdown");
    const spec = parseJobText(`name: ${name}\ndocuments:\n  - path: x\nprompt: Summarise.\nmaxOutputTokens: 256\n`, `${name}.yaml`);
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 5 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "report.md", uri: s3Uri(loop.stack.bucket, doc) }], outputSchema: null },
    );
    const clock = { t: t0 };
    const now = () => clock.t;
    const coord = createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table, { now });
    const deps: WorkerDeps = {
      ...createWorkerDeps({ s3: loop.stack.s3, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, coord, catalog: loadCatalog(), log: silentLog, apiKey: "sk-test", baseURL: loop.sim.baseURL }),
      now,
      sleep: async (ms) => void (clock.t += ms),
    };
    const item = job.items[0]!;
    const task: TaskMessage = { v: 1, jobId: job.jobId, itemId: item.id, bucket: loop.stack.bucket, documents: item.documents.map((d) => d.uri) };
    const deliver = async (): Promise<ReturnToQueue | string> => {
      try {
        return await runTask(deps, task, { receiveCount: 1, deadlineAt: clock.t + 900_000 });
      } catch (e) {
        if (e instanceof ReturnToQueue) return e;
        throw e;
      }
    };
    /** The item's record in the coordination table, as the worker left it. */
    const claimRecord = async () =>
      (await loop.stack.dynamo.client.send(new GetItemCommand({ TableName: loop.stack.dynamo.table, Key: { pk: { S: coordKeys.claim(job.jobId, item.id) } } }))).Item;
    return { job, item, clock, coord, deliver, doc, claimRecord };
  }

  it("books its place behind a line 20 hours long and is delivered 3 times in all: book, wait past 12 hours, run", async () => {
    const t0 = Date.UTC(2026, 11, 6, 0, 0, 0);
    const { job, item, clock, deliver, doc, claimRecord } = await setUp("long-wait", t0);
    // Others have booked 20 hours of the account's quota ahead of this job.
    await loop.stack.dynamo.client.send(new PutItemCommand({ TableName: loop.stack.dynamo.table, Item: { pk: { S: coordKeys.quota("qwen3-max") }, lineEnd: { N: String(t0 + 20 * HOUR) } } }));
    const calls = loop.sim.calls.length;

    // Delivery 1 reads the document (its size decides its place), books and hands the task back.
    const first = await deliver();
    expect(first).toBeInstanceOf(ReturnToQueue);
    const wait1 = first as ReturnToQueue;
    expect(wait1.wait).toBe(true);
    // SQS keeps a message hidden at most 12 hours: the first wait is the cap.
    expect(wait1.delayS).toBe(MAX_VISIBILITY_S);
    expect((await claimRecord())?.bookedAt?.N).toBe(String(t0 + 20 * HOUR));

    // Delivery 2, 12 hours on: its place is still 8 hours ahead. It goes back without reading the
    // document (gone from S3 meanwhile: reading it would fail the item).
    const bytes = (await store.getBytes(doc))!;
    await store.delete(doc);
    clock.t += 12 * HOUR;
    const second = await deliver();
    expect(second).toBeInstanceOf(ReturnToQueue);
    // It comes back a moment before its place, to read its documents by then.
    expect((second as ReturnToQueue).delayS).toBe(8 * 3600 - ARRIVE_EARLY_MS / 1000);
    expect(loop.sim.calls.length).toBe(calls);

    // Delivery 3, at its place: it runs.
    await store.put(doc, bytes, "text/markdown");
    clock.t += 8 * HOUR;
    expect(await deliver()).toBe("succeeded");
    expect(loop.sim.calls.length).toBe(calls + 1);
    const result = (await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json")))!;
    expect(result).toMatchObject({ status: "succeeded", attempts: 1, deliveries: 3 });
  });

  it("books its place at once for a wait under a minute, and runs at it: 2 deliveries in all", async () => {
    const t0 = Date.UTC(2026, 11, 10);
    const { job, item, clock, coord, deliver, claimRecord } = await setUp("short-wait", t0);
    const model = getModel(loadCatalog(), "qwen3-max");
    // Another job took nearly the whole minute of the account's tokens half a minute ago.
    const other = await coord.reserveQuota({ model: model.id, tokens: model.tpm - 100, account: { rpm: model.rpm, tpm: model.tpm }, maxWaitMs: 0, now: t0 - 30_000 });
    expect(other.ok).toBe(true);

    // Delivery 1: the minute frees in about 30 s, past the in-process wait: the item books its place
    // then (in the order the items came, not when it would come back) and hands the task back.
    const first = await deliver();
    expect(first).toBeInstanceOf(ReturnToQueue);
    const bookedAt = Number((await claimRecord())?.bookedAt?.N);
    expect(bookedAt).toBeGreaterThan(t0 + 20_000);
    expect(bookedAt).toBeLessThanOrEqual(t0 + 32_000);
    // It comes back a moment before its place (SQS counts the delay in whole seconds).
    const early = (bookedAt - t0 - ARRIVE_EARLY_MS) / 1000;
    expect((first as ReturnToQueue).delayS).toBeGreaterThanOrEqual(early);
    expect((first as ReturnToQueue).delayS).toBeLessThan(early + 1);

    // Delivery 2, at its place: it runs.
    clock.t = bookedAt;
    expect(await deliver()).toBe("succeeded");
    const result = (await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json")))!;
    expect(result).toMatchObject({ status: "succeeded", attempts: 1, deliveries: 2 });
  });

  it("at a place the line misjudged by minutes, comes back once more and then waits in process: 3 deliveries in all", async () => {
    const t0 = Date.UTC(2026, 11, 14);
    const { job, item, clock, coord, deliver, claimRecord } = await setUp("misjudged-place", t0);
    const model = getModel(loadCatalog(), "qwen3-max");
    const account = { rpm: model.rpm, tpm: model.tpm };
    const takeMinutes = async (n: number) => {
      for (let i = 0; i < n; i++) expect((await coord.reserveQuota({ model: model.id, tokens: model.tpm - 100, account, maxWaitMs: 3_600_000, now: clock.t })).ok).toBe(true);
    };

    // Delivery 1 books a place in line behind a nearly full minute.
    await coord.reserveQuota({ model: model.id, tokens: model.tpm - 100, account, maxWaitMs: 0, now: t0 - 30_000 });
    expect(await deliver()).toBeInstanceOf(ReturnToQueue);
    const bookedAt = Number((await claimRecord())?.bookedAt?.N);
    expect(bookedAt).toBeGreaterThan(t0);

    // Others took the quota's next three minutes meanwhile: at its place the start is far past the
    // 30 s a booked item usually waits, so delivery 2 hands the task back, keeping its place.
    clock.t = bookedAt;
    await takeMinutes(3);
    const second = await deliver();
    expect(second).toBeInstanceOf(ReturnToQueue);
    expect(Number((await claimRecord())?.bookedAt?.N)).toBe(bookedAt);

    // Delivery 3 is the last: with two more minutes taken meanwhile, it waits for its start here.
    clock.t += (second as ReturnToQueue).delayS * 1000;
    await takeMinutes(2);
    const arrived = clock.t;
    expect(await deliver()).toBe("succeeded");
    expect(clock.t - arrived).toBeGreaterThan(60_000);
    const result = (await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json")))!;
    expect(result).toMatchObject({ status: "succeeded", attempts: 1, deliveries: 3 });
  });

  it("takes its place at once when nobody is waiting in line", async () => {
    // Long after the other test's line has ended (the clock is the test's).
    const { job, item, deliver } = await setUp("no-wait", Date.UTC(2026, 11, 20));
    expect(await deliver()).toBe("succeeded");
    const result = (await store.getJson<ItemResult>(keys.item(job.jobId, item.id, "result.json")))!;
    expect(result).toMatchObject({ deliveries: 1, attempts: 1 });
  });
});
