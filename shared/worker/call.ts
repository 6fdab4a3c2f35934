/**
 * One model call inside the fleet's shared limits, traced as it streams. A call an earlier
 * delivery of the item paid for is taken from the journal instead. Otherwise the call's worst-case
 * cost is reserved in the job's ledger and its worst-case tokens in the account's quota before it
 * starts (or, when the quota's line is long, the item books a place in it and waits in the queue);
 * its output caps are sized after the wait, from the time really left; the reasoning and answer go
 * to the attempt's partial files as they arrive; the answer is kept in the journal the moment it
 * returns; and both reservations are settled with what the call was billed.
 */
import { budgetForCall, type ModelSpeed } from "../model/budget.ts";
import { formatCost, priceFor, type ModelInfo } from "../model/catalog.ts";
import type { ChatResult, Usage } from "../model/client.ts";
import type { CallPlan } from "../model/plan.ts";
import { LongdocError, ModelError } from "../errors.ts";
import type { QuotaTicket } from "../run/coord.ts";
import type { Delivery } from "./delivery.ts";
import { ARRIVE_EARLY_MS } from "./guards.ts";
import { keepPaid } from "./paid.ts";
import { ReturnToQueue } from "./records.ts";
import type { WorkerDeps } from "./context.ts";
/** How late a worker may wake for its planned start before it takes a new one (under the schedule's margin). */
const LATE_START_MS = 100;
/** A call decoding fewer tokens says little about the model's speed. */
const MIN_TOKENS_TO_MEASURE = 64;
/** Measured speeds are trusted within this factor of the catalog's figure (a stalled or instant stream is not a speed). */
const SPEED_TRUST_FACTOR = 10;

export interface CallOptions {
  /** The question id of a per-question call, "repair", a sample or tool round ("q1 sample 2 round 3"), or null for the item's single call. */
  label: string | null;
  /** Quota waits longer than this go back to the queue. */
  maxWaitMs: number;
}

/** How long a container goes on with the fleet's speed figure before reading it again (it moves slowly). */
const SPEED_READ_EVERY_MS = 15_000;
/** How often a container adds its own measurement (a deadline's stopped call always does). */
const SPEED_WRITE_EVERY_MS = 60_000;
type SeenSpeed = Awaited<ReturnType<WorkerDeps["coord"]["modelSpeed"]>>;
/** Per container (its coordinator), per model: the last read of the fleet's figure. */
const speedReads = new WeakMap<WorkerDeps["coord"], Map<string, { at: number; seen: Promise<SeenSpeed> }>>();
/** Per container, per model: when it last added a measurement. */
const speedWrites = new WeakMap<WorkerDeps["coord"], Map<string, number>>();

/**
 * The fleet's speed figure for a model, read at most every SPEED_READ_EVERY_MS per container. The
 * worker asks for it beside the claim (readAhead), so that a call does not wait for the read.
 */
export function fleetSpeed(deps: WorkerDeps, modelId: string): Promise<SeenSpeed> {
  const now = (deps.now ?? Date.now)();
  let reads = speedReads.get(deps.coord);
  if (!reads) speedReads.set(deps.coord, (reads = new Map()));
  const last = reads.get(modelId);
  if (last && now - last.at < SPEED_READ_EVERY_MS) return last.seen;
  const seen = deps.coord.modelSpeed(modelId).catch(() => null);
  reads.set(modelId, { at: now, seen });
  return seen;
}

/** The model's speed: the fleet's rolling measurement within reason, else the catalog's assumption. */
export async function modelSpeed(deps: WorkerDeps, model: ModelInfo): Promise<ModelSpeed> {
  const catalog = { decodeTokensPerSecond: model.decodeTokensPerSecond ?? deps.timing.decodeTokensPerSecond, prefillTokensPerSecond: model.prefillTokensPerSecond };
  const seen = await fleetSpeed(deps, model.id);
  const trusted = (x: number | null | undefined, base: number) => (x && x >= base / SPEED_TRUST_FACTOR && x <= base * SPEED_TRUST_FACTOR ? x : null);
  const decode = trusted(seen?.decodeTokensPerSecond, catalog.decodeTokensPerSecond);
  const prefill = trusted(seen?.prefillTokensPerSecond, catalog.prefillTokensPerSecond);
  return {
    decodeTokensPerSecond: decode ?? catalog.decodeTokensPerSecond,
    prefillTokensPerSecond: prefill ?? catalog.prefillTokensPerSecond,
    source: decode !== null || prefill !== null ? "measured" : "catalog",
  };
}

export async function callModel(d: Delivery, model: ModelInfo, plan: CallPlan, o: CallOptions): Promise<ChatResult> {
  const kept = d.journal.reuse(plan, o.label);
  if (kept) return kept;
  const speed = await modelSpeed(d.deps, model);
  const first = sizeCall(d, plan, speed);
  if (!first) throw new ReturnToQueue(1, tooLittleTime(timeLeftMs(d), plan.inputTokens, speed));
  const worstTokens = plan.inputTokens + first.maxOutputTokens + (first.thinkingBudget ?? 0);
  const spend = await reserveSpend(d, model, plan.inputTokens, worstTokens);
  let quota: QuotaTicket | null = null;
  try {
    const place = await takeQuota(d, model, { worst: worstTokens, line: lineTokens(plan.inputTokens, worstTokens) }, o.maxWaitMs);
    quota = place.ticket;
    // Sized after the wait, from the time really left. Too little left: the task goes back to the
    // queue unsent (not an attempt), for a delivery with a fresh deadline.
    const budget = sizeCall(d, plan, speed);
    if (!budget) throw new ReturnToQueue(1, `after the quota wait, ${tooLittleTime(timeLeftMs(d), plan.inputTokens, speed)}`);
    const ticket = quota;
    quota = null;
    // From here the stream settles both reservations with what the call was billed.
    const result = await stream(d, model, plan, { ...budget, label: o.label, speed, ticket, spend });
    if (place.booked) {
      // The line was moved on by the call's worst case: what it did not use goes back to it.
      // (Negative when the call used more: the line grows back, and later places come later.)
      const unusedTokens = lineTokens(plan.inputTokens, worstTokens) - (result.usage.inputTokens + result.usage.outputTokens);
      const { job } = d;
      d.pending.add("giving the quota's line back what the call did not use", () =>
        d.deps.coord.shortenLine({ model: model.id, unusedTokens, account: { rpm: model.rpm, tpm: model.tpm }, job: { jobId: job.jobId, rpm: job.spec.limits.rpm, tpm: job.spec.limits.tpm } }),
      );
    }
    return result;
  } catch (e) {
    // Never sent: give the reservations back.
    if (quota) await d.deps.coord.releaseQuota(quota).catch(() => undefined);
    if (quota || !spend.sent) await spend.settle(0).catch(() => undefined);
    throw e;
  }
}

const timeLeftMs = (d: Delivery) => d.ctx.deadlineAt - d.now() - d.deps.timing.deadlineMarginMs;

function sizeCall(d: Delivery, plan: CallPlan, speed: ModelSpeed) {
  return budgetForCall({ maxOutputTokens: plan.maxOutputTokens, thinkingBudget: plan.thinkingBudget }, { timeLeftMs: timeLeftMs(d), inputTokens: plan.inputTokens, speed });
}

/** A call's worst-case cost held in the job's ledger until `settle` says what it cost. */
interface SpendHold {
  worst: number;
  /** The request left: the stream settles the hold. */
  sent: boolean;
  settled: boolean;
  settle(actual: number): Promise<void>;
}

async function reserveSpend(d: Delivery, model: ModelInfo, inputTokens: number, worstTokens: number): Promise<SpendHold> {
  const { job } = d;
  const cap = job.limits.maxCost;
  const worst = priceFor(model, { inputTokens, outputTokens: worstTokens - inputTokens, cachedTokens: 0 }).cost;
  const hold: SpendHold = {
    worst,
    sent: false,
    settled: cap === null,
    async settle(actual) {
      if (hold.settled) return;
      hold.settled = true;
      await d.deps.coord.settleSpend(job.jobId, worst, actual);
    },
  };
  if (cap === null) return hold;
  const spend = await d.deps.coord.reserveSpend(job.jobId, worst, cap);
  if (spend.ok) return hold;
  if (!spend.capReached) {
    // Calls in flight hold the rest of the cap; their real cost is usually lower. Wait for them.
    throw new ReturnToQueue(2 + Math.random() * 3, "the job's cost cap is held by calls in flight");
  }
  const money = (n: number) => formatCost(n, model.currency);
  const capField = job.spec.limits.maxCost !== undefined ? "limits.maxCost" : "limits.maxCostUsd";
  throw new LongdocError("cost_cap", `not sent: the job has spent ${money(spend.spentUsd)} and this call could cost up to ${money(worst)}, over ${capField} (${formatCost(cap, model.currency, null)})`);
}

/**
 * A place in the account's quota (and the job's own caps): now or within `maxWaitMs`, slept for
 * here. When the quota's line of waiting items is longer than that, or the schedule has no room
 * soon, the item books a place at the end of the line and waits for it in the queue, keeping it
 * across deliveries however long the wait.
 */
async function takeQuota(d: Delivery, model: ModelInfo, tokens: { worst: number; line: number }, maxWaitMs: number): Promise<{ ticket: QuotaTicket; booked: boolean }> {
  const { deps, job } = d;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  // The schedule holds the worst case; the line moves by what the call is likely to use.
  const request = { model: model.id, tokens: tokens.worst, account: { rpm: model.rpm, tpm: model.tpm }, job: { jobId: job.jobId, rpm: job.spec.limits.rpm, tpm: job.spec.limits.tpm } };
  const booked = d.claimed.bookedAt !== null;
  // Behind the items already waiting in line, unless this item's place has come.
  const booking = { ...request, tokens: tokens.line };
  if (!booked && (await deps.coord.quotaLineEnd(model.id, job.jobId, d.now())) - d.now() > LINE_AFTER_MS) await book(d, booking);
  // A booked item's last delivery (WAITING_DELIVERIES) waits in process for its start.
  const last = booked && d.claimed.deliveries >= WAITING_DELIVERIES;
  const bookedWait = last ? Infinity : BOOKED_WAIT_MS;
  const wait = Math.min(booked ? Math.max(maxWaitMs, bookedWait) : maxWaitMs, Math.max(0, timeLeftMs(d) / 2));
  for (let round = 0; ; round++) {
    const got = await deps.coord.reserveQuota({ ...request, maxWaitMs: wait, now: d.now() });
    if (!got.ok) {
      // A booked item keeps its place and comes back soon; another one goes to the end of the line,
      // which starts no earlier than the schedule's first room for it.
      if (booked) throw new ReturnToQueue(got.retryAfterMs / 1000 + Math.random(), "waiting for the account's quota at its place in line", undefined, { wait: true });
      await book(d, booking, d.now() + wait + got.retryAfterMs);
    } else {
      // A start planned in the log is only safe if the request leaves on time: a worker that wakes
      // late (a busy machine, a slow store) takes a new place rather than crowd the next request.
      if (got.startAt > d.now()) await sleep(got.startAt - d.now());
      // A booked item keeps its place until it finishes: a retry after a refusal does not queue again.
      if (d.now() - got.startAt <= LATE_START_MS || round >= 3) return { ticket: got.ticket, booked };
      await deps.coord.releaseQuota(got.ticket);
    }
  }
}

/**
 * What a call moves the quota's line by: its input and a quarter of its answer cap and thinking
 * budget. Calls rarely use their whole caps, and a line paced by the worst case leaves the quota
 * idle while booked items wait for places that come too late; one that comes too early costs only
 * a wait in process (or one more delivery), and each call's real use corrects the line after it.
 */
const lineTokens = (inputTokens: number, worstTokens: number) => Math.ceil(inputTokens + (worstTokens - inputTokens) / 4);

/**
 * A line longer than this: a new item books its place at the end of it without asking the
 * schedule (the items already waiting go first). Otherwise an item that cannot start within its
 * in-process wait books its place at once, in the order the items came. (A first wait that came
 * back when the schedule said booked later the longer it was: large requests, which wait
 * longest, gathered at the end of a job, and its middle held only small requests, which the
 * per-second windows let use 0.65–0.8 of the TPM.)
 */
const LINE_AFTER_MS = 60_000;

/** A booked item may wait this long in process for the schedule at its place (its line was paced to the quota). */
const BOOKED_WAIT_MS = 30_000;

/**
 * Deliveries an item spends waiting for quota, the one that runs included: the one that books,
 * the one at its place and, when the line misjudged that place, one more, the last: it waits in
 * process for its start (up to half its time left) rather than come back again. Its start held
 * ahead in the schedule takes no room the requests before it could use (quota-schedule.ts), so
 * the wait costs the quota nothing.
 */
const WAITING_DELIVERIES = 3;

async function book(d: Delivery, request: Parameters<WorkerDeps["coord"]["bookQuota"]>[0], notBefore?: number): Promise<never> {
  const at = await d.deps.coord.bookQuota({ ...request, now: d.now(), notBefore });
  await d.deps.coord.setBooking(d.job.jobId, d.item.id, d.deps.owner, at);
  throw new ReturnToQueue((at - ARRIVE_EARLY_MS - d.now()) / 1000, "waiting in line for the account's quota", undefined, { wait: true });
}

/** The request itself: counted as the attempt's, streamed to its trace, kept in the journal when it returns. */
async function stream(
  d: Delivery,
  model: ModelInfo,
  plan: CallPlan,
  c: { maxOutputTokens: number; thinkingBudget?: number; limitedByDeadline: boolean; prefillMs: number; label: string | null; speed: ModelSpeed; ticket: QuotaTicket; spend: SpendHold },
): Promise<ChatResult> {
  const { deps, job } = d;
  // One cap on reasoning plus answer (docs/qwen-api.md §3, max_completion_tokens): the thinking
  // budget plus the answer cap, both already cut to the time left when the deadline limits them.
  const maxCompletionTokens = c.maxOutputTokens + (c.thinkingBudget ?? 0);
  // Counting the attempt and writing its open record go together; both land before the request leaves.
  const shape = { label: c.label, inputTokens: plan.inputTokens, maxOutputTokens: c.maxOutputTokens, thinkingBudget: c.thinkingBudget, maxCompletionTokens, limitedByDeadline: c.limitedByDeadline, reservedCost: c.spend.worst };
  const [, trace] = await Promise.all([beginAttempt(d), d.recorder.startCall(shape)]).catch(async (e: unknown) => {
    // Not sent: the place in the quota goes back.
    await deps.coord.releaseQuota(c.ticket).catch(() => undefined);
    throw e;
  });
  c.spend.sent = true;
  // The last call's settling waits no longer than this one's start.
  d.pending.start();
  const startedAt = d.now();
  const stopAfterMs = Math.max(1, timeLeftMs(d));
  let result: ChatResult;
  try {
    const chat = () =>
      deps.model.chat(
        {
          model: model.id,
          messages: plan.messages,
          maxOutputTokens: c.maxOutputTokens,
          maxCompletionTokens,
          // The plan's thinking: a question may set its own.
          thinking: { enabled: plan.thinkingBudget !== undefined, budget: c.thinkingBudget },
          json: job.outputSchema ? { schema: job.outputSchema, mode: model.structuredOutput } : undefined,
          ...plan.extras,
        },
        { signal: AbortSignal.timeout(stopAfterMs), onChunk: trace.onChunk },
      );
    result = await d.steps.time("model", chat);
  } catch (e) {
    const error = explainFailure(e, d.now() - startedAt, stopAfterMs, plan.inputTokens, c, trace.estimatedUsage().outputTokens);
    const rec = await trace.failed({ kind: error.code, message: error.message, requestId: error instanceof ModelError ? error.requestId : undefined }, d.now());
    // A call stopped at the deadline still shows how fast the model was going: the next budget uses it.
    if (error.code === "deadline") await learnSpeed(deps, model, rec.usage, trace.timings(d.now()), { always: true });
    // What the provider bills for a call that failed mid-stream is not documented: the input and
    // the output streamed are counted; a call refused before streaming counts 0.
    await Promise.all([deps.coord.settleQuota(c.ticket, rec.usage.inputTokens + rec.usage.outputTokens), c.spend.settle(rec.cost)]).catch(() => undefined);
    throw error;
  }
  // Paid: the answer is kept before anything else can interrupt the item.
  const [rec] = await Promise.all([trace.succeeded(result, d.now()), keepPaid(() => d.journal.keep(plan, c.label, result))]);
  const timings = trace.timings(d.now());
  d.pending.add("settling the call's quota and spend", () =>
    Promise.all([deps.coord.settleQuota(c.ticket, result.usage.inputTokens + result.usage.outputTokens), c.spend.settle(rec.cost), learnSpeed(deps, model, result.usage, timings)]),
  );
  return result;
}

/** Counts the delivery's attempt once, when its first request is about to leave. */
async function beginAttempt(d: Delivery): Promise<void> {
  if (d.recorder.begun) return;
  // The claim is this delivery's alone, so the attempt's number is known before the count lands:
  // the recorder opens it now and its open record is written beside the count.
  const expected = d.claimed.attempts + 1;
  d.recorder.begin(expected);
  const counted = await d.deps.coord.countAttempt(d.job.jobId, d.item.id);
  if (counted !== expected) d.deps.log.warn({ jobId: d.job.jobId, itemId: d.item.id, counted, expected }, "the item's attempt count moved under its claim");
}

/** A failed call's error as the user reads it: a stop at the deadline says how long it ran, at what speed, with what budget. */
function explainFailure(e: unknown, ranMs: number, stopAfterMs: number, inputTokens: number, c: { maxOutputTokens: number; thinkingBudget?: number; prefillMs: number; speed: ModelSpeed }, streamedTokens: number): LongdocError {
  const error = LongdocError.is(e) ? e : new LongdocError("internal", e instanceof Error ? e.message : String(e), { cause: e });
  if (error.code !== "deadline") return error;
  return new ModelError(
    "deadline",
    `the call was stopped at the worker's deadline after ${(ranMs / 1000).toFixed(1)} s ` +
      `(${Math.round(stopAfterMs / 1000)} s were left; prefill of ${inputTokens} input tokens assumed ${(c.prefillMs / 1000).toFixed(1)} s, ` +
      `decoding ${c.speed.decodeTokensPerSecond.toFixed(0)} tokens/s (${c.speed.source})): it had streamed about ${streamedTokens} tokens ` +
      `of a budget of ${c.maxOutputTokens} answer + ${c.thinkingBudget ?? 0} thinking tokens; the partial trace is kept under attempts/`,
    { retryable: true, cause: e, requestId: error instanceof ModelError ? error.requestId : undefined },
  );
}

function tooLittleTime(leftMs: number, inputTokens: number, speed: ModelSpeed): string {
  return (
    `only ${Math.max(0, Math.round(leftMs / 1000))} s left before the worker's deadline: the prefill of ${inputTokens} input tokens ` +
    `(~${((inputTokens / speed.prefillTokensPerSecond)).toFixed(1)} s at ${speed.prefillTokensPerSecond} tokens/s) leaves too little to decode at ${speed.decodeTokensPerSecond.toFixed(0)} tokens/s`
  );
}

/**
 * Folds a finished call's decode and prefill speeds into the fleet's rolling figures: from each
 * container once in a while, and always from a call the deadline stopped (its speed was wrong).
 */
async function learnSpeed(deps: WorkerDeps, model: ModelInfo, usage: Usage, t: { firstChunkMs: number | null; decodeMs: number | null }, o: { always?: boolean } = {}): Promise<void> {
  const nowMs = (deps.now ?? Date.now)();
  let writes = speedWrites.get(deps.coord);
  if (!writes) speedWrites.set(deps.coord, (writes = new Map()));
  if (!o.always && nowMs - (writes.get(model.id) ?? -Infinity) < SPEED_WRITE_EVERY_MS) return;
  const seen: { decodeTokensPerSecond?: number; prefillTokensPerSecond?: number } = {};
  if (t.decodeMs && t.decodeMs > 0 && usage.outputTokens >= MIN_TOKENS_TO_MEASURE) seen.decodeTokensPerSecond = usage.outputTokens / (t.decodeMs / 1000);
  const uncached = usage.inputTokens - usage.cachedTokens;
  if (t.firstChunkMs && t.firstChunkMs > 0 && uncached >= 4096) seen.prefillTokensPerSecond = uncached / (t.firstChunkMs / 1000);
  if (seen.decodeTokensPerSecond === undefined && seen.prefillTokensPerSecond === undefined) return;
  writes.set(model.id, nowMs);
  await deps.coord.recordModelSpeed(model.id, seen).catch((e: unknown) => deps.log.warn({ model: model.id, error: String(e) }, "model speed not recorded"));
  // This container's next call uses the figure it just moved (read again here, off the item's path).
  speedReads.get(deps.coord)?.delete(model.id);
  await fleetSpeed(deps, model.id);
}
