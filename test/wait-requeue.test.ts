// A wait for quota never counts toward the dead-letter limit: a wait of up to 15 minutes goes back
// as a fresh copy of the task (its receive count starts again), a longer one under the message's visibility.
import type { SQSRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { eachRecord, ReturnToQueue } from "../shared/worker/records.ts";

const record = (id: string, receiveCount = 4): SQSRecord =>
  ({ messageId: id, receiptHandle: `rh-${id}`, body: `{"task":"${id}"}`, attributes: { ApproximateReceiveCount: String(receiveCount) } }) as unknown as SQSRecord;

describe("a task that waits", () => {
  it("goes back as a fresh, delayed copy when it waits for quota up to 15 minutes; otherwise under its visibility", async () => {
    const sent: { body: string; delayS: number }[] = [];
    const hidden: { handle: string; seconds: number }[] = [];
    const waits: Record<string, ReturnToQueue> = {
      quota: new ReturnToQueue(240, "waiting in line", undefined, { wait: true }),
      long: new ReturnToQueue(5 * 3600, "waiting in line", undefined, { wait: true }),
      backoff: new ReturnToQueue(30, "attempt 1 failed; retrying after a backoff"),
    };
    const out = await eachRecord({ Records: ["quota", "long", "backoff"].map((id) => record(id)) }, silentLog, async (r) => { throw waits[r.messageId]!; }, {
      set: async (handle, seconds) => void hidden.push({ handle, seconds }),
      unknownErrorDelayS: 5,
      requeue: async (body, delayS) => void sent.push({ body, delayS }),
    });
    expect(sent).toEqual([{ body: '{"task":"quota"}', delayS: 240 }]);
    // The copy replaces the delivered message: Lambda deletes a record not reported failed.
    expect(out.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(["long", "backoff"]);
    expect(hidden).toEqual([{ handle: "rh-long", seconds: 5 * 3600 }, { handle: "rh-backoff", seconds: 30 }]);
  });

  it("waits under its visibility when the copy cannot be sent", async () => {
    const hidden: number[] = [];
    const out = await eachRecord({ Records: [record("q")] }, silentLog, async () => { throw new ReturnToQueue(60, "waiting in line", undefined, { wait: true }); }, {
      set: async (_h, seconds) => void hidden.push(seconds),
      unknownErrorDelayS: 5,
      requeue: async () => { throw new Error("SQS is down"); },
    });
    expect(out.batchItemFailures).toHaveLength(1);
    expect(hidden).toEqual([60]);
  });
});
