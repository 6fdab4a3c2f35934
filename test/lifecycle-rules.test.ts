// The item lifecycle's rules (runTask: claim → guards → answer → persist → settle) on in-memory
// storage: the coordinator's rules as test/coord.test.ts proves them on DynamoDB, S3 as
// test/memory-s3.test.ts proves it on the emulator, and a scripted model client. No emulator, no
// HTTP: each rule costs milliseconds. What needs real processes, queues and the simulator
// (redelivery timing, kills, the fault suite) stays in the end-to-end tests.
import { describe, expect, it } from "vitest";
import { InfraError, LongdocError, ModelError } from "../shared/errors.ts";
import { createMemoryCoordinator } from "../shared/local/memory-coord.ts";
import { keys } from "../shared/run/store.ts";
import { ReturnToQueue } from "../shared/worker/records.ts";
import { answer, memoryJob, scriptedModel } from "./helpers/memory-worker.ts";

const oneDoc = { "a.md": "# A\n\nRevenue rose 4 percent.\n" };
const plain = "name: unit\ndocuments:\n  - path: a.md\nprompt: Summarise.\nmaxOutputTokens: 256\n";

const unavailable = () => new ModelError("model_unavailable", "503 ModelUnavailable", { retryable: true, status: 503 });
const rateLimited = () => new ModelError("rate_limited", "429 limit_requests", { retryable: true, status: 429 });
const badRequest = () => new ModelError("model_bad_request", "400 InvalidParameter: the prompt is malformed", { status: 400 });

describe("item lifecycle rules (in memory)", () => {
  it("answers an item once; a redelivery of a finished item never calls the model again", async () => {
    const model = scriptedModel(() => answer("Revenue rose 4%."));
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model });
    const task = w.tasks[0]!;
    expect(await w.deliver(task)).toBe("succeeded");
    expect(await w.deliver(task)).toBe("already-done");
    expect(model.calls).toHaveLength(1);
    expect(await w.result(task.itemId)).toMatchObject({ status: "succeeded", attempts: 1, error: null });
    expect(await w.store.getBytes(keys.item(w.job.jobId, task.itemId, "answer.md"))).toEqual(new TextEncoder().encode("Revenue rose 4%."));
    expect(w.record(task.itemId)).toMatchObject({ status: "succeeded", attempts: 1, deliveries: 1 });
    // The job's last item ends the job.
    expect(await w.manifest()).toMatchObject({ status: "succeeded", counts: { total: 1, succeeded: 1 } });
  });

  it("a delivery that died after writing result.json is recorded by the next one, with no second call", async () => {
    const model = scriptedModel();
    const coord = createMemoryCoordinator();
    const finish = coord.finishItem.bind(coord);
    let died = false;
    // The delivery ends (with an error nothing retries) between result.json and the item's record.
    coord.finishItem = async (...a) => (died ? finish(...a) : ((died = true), Promise.reject(new LongdocError("internal", "Runtime exited"))));
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model, coord });
    const task = w.tasks[0]!;
    await expect(w.deliver(task)).rejects.toThrow("Runtime exited");
    expect(await w.result(task.itemId)).toMatchObject({ status: "succeeded" });
    expect(w.record(task.itemId)).toMatchObject({ status: "queued", owner: null });
    expect(await w.deliver(task)).toBe("already-done");
    expect(model.calls).toHaveLength(1);
    expect(w.record(task.itemId)).toMatchObject({ status: "succeeded", deliveries: 2 });
    expect(await w.manifest()).toMatchObject({ status: "succeeded", counts: { total: 1, succeeded: 1 } });
  });

  it("retries the item's record in place when the store fails after a paid answer: the same delivery ends it", async () => {
    const model = scriptedModel();
    const coord = createMemoryCoordinator();
    const finish = coord.finishItem.bind(coord);
    let faults = 1;
    coord.finishItem = async (...a) => (faults-- > 0 ? Promise.reject(new InfraError("coordination store: ThrottlingException: Rate exceeded")) : finish(...a));
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model, coord });
    const task = w.tasks[0]!;
    expect(await w.deliver(task)).toBe("succeeded");
    expect(model.calls).toHaveLength(1);
    expect(w.record(task.itemId)).toMatchObject({ status: "succeeded", attempts: 1, deliveries: 1 });
  });

  it("sends a task whose item another delivery holds back to the queue until that lease ends, documents unread", async () => {
    const model = scriptedModel();
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model });
    const task = w.tasks[0]!;
    expect((await w.coord.claimItem(w.job.jobId, task.itemId, "worker-b", 30_000)).ok).toBe(true);
    const back = await w.deliver(task);
    expect(back).toBeInstanceOf(ReturnToQueue);
    expect((back as ReturnToQueue).delayS).toBeGreaterThanOrEqual(30);
    expect((back as ReturnToQueue).delayS).toBeLessThanOrEqual(32);
    expect(model.calls).toHaveLength(0);
    expect(w.record(task.itemId)).toMatchObject({ owner: "worker-b", attempts: 0 });
    // Once the holder gives it up, the next delivery answers it.
    await w.coord.releaseClaim(w.job.jobId, task.itemId, "worker-b");
    expect(await w.deliver(task)).toBe("succeeded");
    expect(model.calls).toHaveLength(1);
  });

  it.each([
    { stop: "halted", write: (w: Awaited<ReturnType<typeof memoryJob>>) => w.store.putJson(keys.halt(w.job.jobId), { reason: "the API key was refused" }), message: /halted: the API key was refused/ },
    { stop: "cancelled", write: (w: Awaited<ReturnType<typeof memoryJob>>) => w.store.putJson(keys.cancel(w.job.jobId), {}), message: /cancelled/ },
  ])("skips the items of a $stop job without a call", async ({ stop, write, message }) => {
    const model = scriptedModel();
    const w = await memoryJob({ yaml: plain, documents: { ...oneDoc, "b.md": "# B\n" }, model });
    await write(w);
    for (const task of w.tasks) expect(await w.deliver(task)).toBe("skipped");
    expect(model.calls).toHaveLength(0);
    const result = await w.result(w.tasks[0]!.itemId);
    expect(result).toMatchObject({ status: "skipped", error: { kind: stop } });
    // No attempt was counted: nothing was sent.
    expect(w.record(w.tasks[0]!.itemId)).toMatchObject({ status: "skipped", attempts: 0 });
    expect(result!.error!.message).toMatch(message);
    expect(await w.manifest()).toMatchObject({ counts: { total: 2, skipped: 2 } });
  });

  it("skips the tasks of a job whose submit failed part-way, and waits while a submit is still sending", async () => {
    const model = scriptedModel();
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model });
    const task = w.tasks[0]!;
    // Its record says the submit is still sending, then that it failed (a worker asks again until it reads submitted).
    await w.coord.setJobState(w.job.jobId, "submitting");
    const wait = await w.deliver(task);
    expect(wait).toBeInstanceOf(ReturnToQueue);
    expect((wait as ReturnToQueue).message).toMatch(/still being submitted/);
    await w.coord.setJobState(w.job.jobId, "failed");
    expect(await w.deliver(task)).toBe("skipped");
    expect(await w.result(task.itemId)).toMatchObject({ status: "skipped", error: { kind: "submit_failed" } });
    expect(model.calls).toHaveLength(0);
  });

  it("hands a retryable model error back to the queue as a used attempt; the next delivery answers", async () => {
    const model = scriptedModel((_, n) => (n === 1 ? unavailable() : answer("fine")));
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model });
    const task = w.tasks[0]!;
    const back = await w.deliver(task);
    expect(back).toBeInstanceOf(ReturnToQueue);
    expect((back as ReturnToQueue).message).toMatch(/attempt 1 failed \(model_unavailable\); retrying after a backoff/);
    expect(w.record(task.itemId)).toMatchObject({ status: "queued", attempts: 1, refusals: 0, owner: null });
    expect(await w.attempt(task.itemId, 1)).toMatchObject({ attempt: 1, status: "failed", error: { kind: "model_unavailable" } });
    expect(await w.deliver(task)).toBe("succeeded");
    expect(await w.result(task.itemId)).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(model.calls).toHaveLength(2);
  });

  it("fails the item on a model error that will not pass, after one call", async () => {
    const model = scriptedModel(() => badRequest());
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model });
    const task = w.tasks[0]!;
    expect(await w.deliver(task)).toBe("failed");
    expect(await w.result(task.itemId)).toMatchObject({ status: "failed", attempts: 1, error: { kind: "model_bad_request", message: expect.stringMatching(/InvalidParameter/) } });
    expect(await w.deliver(task)).toBe("already-done");
    expect(model.calls).toHaveLength(1);
  });

  it("fails the item once retryable errors have used up maxAttempts", async () => {
    const model = scriptedModel(() => unavailable());
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model, maxAttempts: 2 });
    const task = w.tasks[0]!;
    expect(await w.deliver(task)).toBeInstanceOf(ReturnToQueue);
    expect(await w.deliver(task)).toBe("failed");
    expect(await w.result(task.itemId)).toMatchObject({ status: "failed", attempts: 2, error: { kind: "model_unavailable" } });
    expect(model.calls).toHaveLength(2);
  });

  it("does not let rate-limit refusals use up the item's attempts", async () => {
    // Three 429s then an answer, with two attempts allowed: refusals are not failures.
    const model = scriptedModel((_, n) => (n <= 3 ? rateLimited() : answer("at last")));
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model, maxAttempts: 2 });
    const task = w.tasks[0]!;
    for (let i = 0; i < 3; i++) expect(await w.deliver(task)).toBeInstanceOf(ReturnToQueue);
    expect(w.record(task.itemId)).toMatchObject({ attempts: 3, refusals: 3 });
    expect(await w.deliver(task)).toBe("succeeded");
    expect(await w.result(task.itemId)).toMatchObject({ status: "succeeded", attempts: 4 });
    // Each attempt number has its own record: none was overwritten.
    for (const n of [1, 2, 3]) expect(await w.attempt(task.itemId, n)).toMatchObject({ attempt: n, status: "failed", error: { kind: "rate_limited" } });
    expect(await w.attempt(task.itemId, 4)).toMatchObject({ attempt: 4, status: "succeeded" });
  });

  it("reuses a question's paid call from the journal when a later question's call was refused", async () => {
    const yaml = "name: two\ndocuments:\n  - path: a.md\nquestions:\n  - { id: growth, ask: How much did revenue grow? }\n  - { id: unit, ask: Which unit is this? }\ncalls: per-question\nmaxOutputTokens: 256\n";
    const asks = (req: { messages: unknown[] }) => (JSON.stringify(req.messages).includes("Which unit") ? "unit" : "growth");
    // The first delivery's second call is refused with a 429, after the first one was paid.
    const model = scriptedModel((req, n) => (n === 2 ? rateLimited() : answer(`answer to ${asks(req)}`)));
    const w = await memoryJob({ yaml, documents: oneDoc, model });
    const task = w.tasks[0]!;
    expect(await w.deliver(task)).toBeInstanceOf(ReturnToQueue);
    expect(await w.deliver(task)).toBe("succeeded");
    // growth, unit (refused), then unit again: growth was never paid twice.
    expect(model.calls.map(asks)).toEqual(["growth", "unit", "unit"]);
    const first = await w.attempt(task.itemId, 1);
    expect(first!.calls.filter((c) => c.error === null).map((c) => c.label)).toEqual(["growth"]);
    const second = await w.attempt(task.itemId, 2);
    expect(second!.calls.filter((c) => c.error === null).map((c) => c.label)).toEqual(["unit"]);
    // Once the item has its result, the journal is gone.
    expect(await w.store.hasAny(keys.item(w.job.jobId, task.itemId, "attempts/calls/"))).toBe(false);
  });

  it("halts the job on a refused key: the failing item says why, the rest are skipped without a call", async () => {
    const docs = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`n${i}.md`, `# Note ${i}\n\nValue ${i * 7}.\n`]));
    const model = scriptedModel(() => new ModelError("model_auth", "the API key was refused (401 InvalidApiKey)", { haltsJob: true, status: 401 }));
    const w = await memoryJob({ yaml: "name: halt\ndocuments:\n  - path: '*.md'\nprompt: Summarise.\nmaxOutputTokens: 256\n", documents: docs, model });
    const outcomes = [];
    for (const task of w.tasks) outcomes.push(await w.deliver(task));
    expect(outcomes).toEqual(["failed", "skipped", "skipped", "skipped", "skipped"]);
    expect(model.calls).toHaveLength(1);
    const m = (await w.manifest())!;
    expect(m.status).toBe("halted");
    expect(m.items[0]).toMatchObject({ status: "failed", error: { kind: "model_auth" } });
    expect(m.items.slice(1).every((i) => i.status === "skipped" && i.error?.kind === "halted")).toBe(true);
  });

  it("stops calling the model once the job's spend reaches its cap; the rest end skipped", async () => {
    const docs = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`n${i}.md`, `# Note ${i}\n\nValue ${i * 7}.\n`]));
    const model = scriptedModel(() => answer("Summary.", { inputTokens: 1_000, outputTokens: 300 }));
    const yaml = "name: spend\ndocuments:\n  - path: '*.md'\nprompt: Summarise.\nmaxOutputTokens: 256\nthinking: { enabled: true, budget: 512 }\nlimits: { maxCostUsd: 0.006 }\n";
    const w = await memoryJob({ yaml, documents: docs, model });
    for (const task of w.tasks) await w.deliver(task);
    const m = (await w.manifest())!;
    const answered = m.items.filter((i) => i.status === "succeeded");
    const stopped = m.items.filter((i) => i.status === "skipped");
    expect(answered.length).toBeGreaterThan(0);
    expect(stopped.length).toBeGreaterThan(0);
    expect(answered.length + stopped.length).toBe(5);
    expect(stopped.every((i) => i.error?.kind === "cost_cap" && /over limits\.maxCostUsd \(\$0\.006\)/.test(i.error.message))).toBe(true);
    expect(model.calls).toHaveLength(answered.length);
    // The cap is checked before each call: at most the last call goes past it.
    expect(m.costUsd).toBeLessThanOrEqual(0.006 + Math.max(...answered.map((i) => i.cost)));
    expect(m.status).toBe("partial");
    expect((await w.coord.spend(w.job.jobId)).spentUsd).toBeCloseTo(m.costUsd!, 6);
  });

  it("hands the task back with no attempt used when the coordination store fails before the call", async () => {
    const model = scriptedModel();
    const coord = createMemoryCoordinator();
    const readJobEntry = coord.readJobEntry.bind(coord);
    let faults = 1;
    coord.readJobEntry = async (jobId) => (faults-- > 0 ? Promise.reject(new InfraError("coordination store: ThrottlingException: Rate exceeded")) : readJobEntry(jobId));
    const w = await memoryJob({ yaml: plain, documents: oneDoc, model, coord });
    const task = w.tasks[0]!;
    await expect(w.deliver(task)).rejects.toBeInstanceOf(InfraError);
    expect(w.record(task.itemId)).toMatchObject({ status: "queued", attempts: 0, owner: null });
    expect(await w.deliver(task)).toBe("succeeded");
    expect(await w.result(task.itemId)).toMatchObject({ attempts: 1 });
    expect(model.calls).toHaveLength(1);
  });
});
