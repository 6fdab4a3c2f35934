/**
 * One model call inside the fleet's shared limits, traced as it streams. The call's worst-case
 * cost is reserved in the job's ledger and its worst-case tokens in the account's quota before it
 * starts; its output caps are sized after the quota wait, from the time really left (prefill of
 * the prompt, then decoding at the model's measured speed); the reasoning and answer go to the
 * attempt's partial files as they arrive; and both reservations are settled with what the call
 * was billed, or for a call cut off mid-stream, with what was counted from the text it streamed.
 */
import { budgetForCall, type ModelSpeed } from "../model/budget.ts";
import { formatCost, priceFor, type ModelInfo } from "../model/catalog.ts";
import type { ChatResult, Usage } from "../model/client.ts";
import type { CallPlan } from "../model/plan.ts";
import { LongdocError, ModelError } from "../errors.ts";
import type { JobRecord } from "../job/record.ts";
import type { AttemptRecorder } from "./attempt.ts";
import type { ItemSteps } from "./steps.ts";
import { ReturnToQueue } from "./records.ts";
import type { TaskContext, WorkerDeps } from "./context.ts";

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
  /**
   * Counts the attempt (once per delivery); called just before the first request leaves. It opens
   * `attempt` before its first await, so the call's `startCall` runs beside the count.
   */
  beginAttempt: () => Promise<void>;
  attempt: AttemptRecorder;
  /** The delivery's step clock: the call's time counts as `model`. */
  steps?: ItemSteps;
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

export async function callModel(deps: WorkerDeps, job: JobRecord, model: ModelInfo, plan: CallPlan, ctx: TaskContext, now: () => number, o: CallOptions): Promise<ChatResult> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeLeftMs = () => ctx.deadlineAt - now() - deps.timing.deadlineMarginMs;
  const wanted = { maxOutputTokens: plan.maxOutputTokens, thinkingBudget: plan.thinkingBudget };
  const speed = await modelSpeed(deps, model);
  const sizeNow = () => budgetForCall(wanted, { timeLeftMs: timeLeftMs(), inputTokens: plan.inputTokens, speed });
  const first = sizeNow();
  if (!first) throw new ReturnToQueue(1, tooLittleTime(timeLeftMs(), plan.inputTokens, speed));
  const worstTokens = plan.inputTokens + first.maxOutputTokens + (first.thinkingBudget ?? 0);
  const price = (u: Parameters<typeof priceFor>[1]) => priceFor(model, u).cost;

  // In the region's currency (older job records have only maxCostUsd).
  const cap = job.limits.maxCost ?? job.limits.maxCostUsd;
  const capField = job.spec.limits.maxCost !== undefined ? "limits.maxCost" : "limits.maxCostUsd";
  const money = (n: number) => formatCost(n, model.currency);
  const worstUsd = price({ inputTokens: plan.inputTokens, outputTokens: worstTokens - plan.inputTokens, cachedTokens: 0 });
  if (cap !== null) {
    const spend = await deps.coord.reserveSpend(job.jobId, worstUsd, cap);
    if (!spend.ok) {
      if (spend.capReached) {
        throw new LongdocError(
          "cost_cap",
          `not sent: the job has spent ${money(spend.spentUsd)} and this call could cost up to ${money(worstUsd)}, over ${capField} (${formatCost(cap, model.currency, null)})`,
        );
      }
      // Calls in flight hold the rest of the cap; their real cost is usually lower. Wait for them.
      throw new ReturnToQueue(2 + Math.random() * 3, "the job's cost cap is held by calls in flight");
    }
  }
  let spendSettled = false;
  const settleSpend = async (actualUsd: number) => {
    if (spendSettled) return;
    spendSettled = true;
    if (cap !== null) await deps.coord.settleSpend(job.jobId, worstUsd, actualUsd);
  };

  const reservation = {
    model: model.id,
    tokens: worstTokens,
    account: { rpm: model.rpm, tpm: model.tpm },
    job: { jobId: job.jobId, rpm: job.spec.limits.rpm, tpm: job.spec.limits.tpm },
  };
  const quota = await deps.coord.reserveQuota({ ...reservation, maxWaitMs: Math.min(o.maxWaitMs, Math.max(0, timeLeftMs() / 2)), now: now() });
  if (!quota.ok) {
    await settleSpend(0);
    throw new ReturnToQueue(quota.retryAfterMs / 1000 + Math.random(), "waiting for the account's quota");
  }
  let ticket = quota.ticket;
  let sent = false;
  let settledQuota = false;
  try {
    // A start planned in the log is only safe if the request leaves on time: a worker that wakes
    // late (a busy machine, a slow store) takes a new place rather than crowd the next request.
    for (let startAt = quota.startAt, round = 0; ; round++) {
      const wait = startAt - now();
      if (wait > 0) await sleep(wait);
      if (now() - startAt <= LATE_START_MS || round >= 3) break;
      await deps.coord.releaseQuota(ticket);
      const again = await deps.coord.reserveQuota({ ...reservation, now: now(), maxWaitMs: 60_000 });
      if (!again.ok) {
        settledQuota = true;
        throw new ReturnToQueue(again.retryAfterMs / 1000, "waiting for the account's quota");
      }
      ticket = again.ticket;
      startAt = again.startAt;
    }
    // Sized after the wait, from the time really left. Too little left: the task goes back to the
    // queue unsent (not an attempt), for a delivery with a fresh deadline.
    const budget = sizeNow();
    if (!budget) throw new ReturnToQueue(1, `after the quota wait, ${tooLittleTime(timeLeftMs(), plan.inputTokens, speed)}`);
    // One cap on reasoning plus answer (docs/qwen-api.md §3, max_completion_tokens): the thinking
    // budget plus the answer cap, both already cut to the time left when the deadline limits them.
    const maxCompletionTokens = budget.maxOutputTokens + (budget.thinkingBudget ?? 0);

    // Counting the attempt and writing its open record go together; both land before the request leaves.
    const [, trace] = await Promise.all([o.beginAttempt(), o.attempt.startCall({
      label: o.label,
      inputTokens: plan.inputTokens,
      maxOutputTokens: budget.maxOutputTokens,
      thinkingBudget: budget.thinkingBudget,
      maxCompletionTokens,
      limitedByDeadline: budget.limitedByDeadline,
      reservedCost: cap === null ? 0 : worstUsd,
    })]);
    const startedAt = now();
    const stopAfterMs = Math.max(1, timeLeftMs());
    sent = true;
    let result: ChatResult;
    try {
      const chat = () => deps.model.chat(
        {
          model: model.id,
          messages: plan.messages,
          maxOutputTokens: budget.maxOutputTokens,
          maxCompletionTokens,
          // The plan's thinking: a question may set its own (issue 12).
          thinking: { enabled: plan.thinkingBudget !== undefined, budget: budget.thinkingBudget },
          json: job.outputSchema ? { schema: job.outputSchema, mode: model.structuredOutput } : undefined,
          ...plan.extras, // issue 12: tools, tool_choice, seed
        },
        { signal: AbortSignal.timeout(stopAfterMs), onChunk: trace.onChunk },
      );
      result = await (o.steps ? o.steps.time("model", chat) : chat());
    } catch (e) {
      let error = LongdocError.is(e) ? e : new LongdocError("internal", e instanceof Error ? e.message : String(e), { cause: e });
      const seen = trace.estimatedUsage();
      if (error.code === "deadline") {
        // The numbers a user needs: how long it ran, what it had streamed of what budget, at what assumed speed.
        error = new ModelError(
          "deadline",
          `the call was stopped at the worker's deadline after ${((now() - startedAt) / 1000).toFixed(1)} s ` +
            `(${Math.round(stopAfterMs / 1000)} s were left; prefill of ${plan.inputTokens} input tokens assumed ${(budget.prefillMs / 1000).toFixed(1)} s, ` +
            `decoding ${speed.decodeTokensPerSecond.toFixed(0)} tokens/s (${speed.source})): it had streamed about ${seen.outputTokens} tokens ` +
            `of a budget of ${budget.maxOutputTokens} answer + ${budget.thinkingBudget ?? 0} thinking tokens; the partial trace is kept under attempts/`,
          { retryable: true, cause: e, requestId: error instanceof ModelError ? error.requestId : undefined },
        );
      }
      const rec = await trace.failed({ kind: error.code, message: error.message, requestId: error instanceof ModelError ? error.requestId : undefined }, now());
      // A call stopped at the deadline still shows how fast the model was going: the next budget uses it.
      if (error.code === "deadline") await learnSpeed(deps, model, rec.usage, trace.timings(now()), { always: true });
      // What the provider bills for a call that failed mid-stream is not documented: the input and
      // the output streamed are counted (docs/qwen-api.md §8); a call refused before streaming counts 0.
      settledQuota = true;
      await Promise.all([deps.coord.settleQuota(ticket, rec.usage.inputTokens + rec.usage.outputTokens), settleSpend(rec.cost)]).catch(() => undefined);
      throw error;
    }
    const rec = trace.succeeded(result, now());
    settledQuota = true;
    // The answer's writes need not wait for the ledgers: they are settled once the item's result is
    // written (or the next call starts), and the task waits for them before it returns. Should one
    // fail, the reservation stays at its worst case, which errs on the safe side.
    const usedTokens = result.usage.inputTokens + result.usage.outputTokens;
    const timings = trace.timings(now());
    o.attempt.deferAfterResult(
      () => Promise.all([deps.coord.settleQuota(ticket, usedTokens), settleSpend(rec.cost), learnSpeed(deps, model, result.usage, timings)]),
      "settling the call's quota and spend",
    );
    return result;
  } finally {
    if (!settledQuota) {
      // Never sent, or failed before a trace: give the reservations back.
      await Promise.all([sent ? deps.coord.settleQuota(ticket, plan.inputTokens) : deps.coord.releaseQuota(ticket), settleSpend(0)]).catch(() => undefined);
    }
  }
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
