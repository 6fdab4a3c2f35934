/**
 * One real attempt at an item, as it happens: the reasoning and the answer are written to S3 while
 * they stream (S3 has no append, so the growing text overwrites `attempts/<n>.reasoning.md` and
 * `attempts/<n>.answer.md` on each flush, by size and by time), and a record of the attempt says
 * which calls it made, what each was billed (or, for a call cut off before its usage chunk, what
 * was counted from the streamed text), its finish reasons, request ids and error.
 *
 * While the attempt runs its record is `attempts/<n>.open.json`; when it ends it becomes
 * `attempts/<n>.json`. A worker that dies mid-attempt leaves the open record and the partial
 * files; the next delivery closes it (`closeAbandonedAttempt`), counting its cost.
 */
import type { Log } from "../log.ts";
import { keys, type ObjectStore } from "../run/store.ts";
import type { ErrorCode } from "../errors.ts";
import { addUsage, zeroUsage, type Usage } from "../model/usage.ts";
import type { ChatResult, StreamProgress } from "../model/client.ts";
import { countTokens } from "../tokens/index.ts";
import type { AttemptRecord, AttemptStatus, CallRecord, InFlightCall } from "../run/attempt-record.ts";

/** When a partial trace is written again: after this many new bytes, or this long after the last write. */
export interface TraceFlush {
  bytes: number;
  ms: number;
}
export const DEFAULT_TRACE_FLUSH: TraceFlush = { bytes: 64 * 1024, ms: 2_000 };

/** What the recorder needs to know of the call it traces. */
export interface CallShape {
  label: string | null;
  inputTokens: number;
  maxOutputTokens: number;
  thinkingBudget?: number;
  maxCompletionTokens?: number;
  limitedByDeadline: boolean;
  /** Worst-case cost reserved in the ledger (0 without a cost cap). */
  reservedCost: number;
}

export interface AttemptDeps {
  store: ObjectStore;
  jobId: string;
  itemId: string;
  owner: string;
  log: Pick<Log, "warn">;
  flush: TraceFlush;
  currency: string;
  /** Cost of a usage at the call's tier (the catalog's prices). */
  price: (u: Usage & { cacheType?: "implicit" | "ephemeral" }) => number;
  now?: () => number;
}

const relPath = (itemId: string, file: string) => `items/${itemId}/${file}`;
const iso = (ms: number) => new Date(ms).toISOString();

type Section = { label: string | null; text: string[] };

/**
 * Sections of a trace: one per call; a single unlabelled call is plain text, several are `## label`
 * sections (as the final files join them). Calls streaming together each write their own section.
 */
class Sections {
  private readonly parts: Section[] = [];
  begin(label: string | null): Section {
    const part: Section = { label, text: [] };
    this.parts.push(part);
    return part;
  }
  get empty() {
    return this.parts.every((p) => p.text.length === 0);
  }
  render(): string {
    if (this.parts.length === 1 && this.parts[0]!.label === null) return this.parts[0]!.text.join("");
    return this.parts.map((p) => `## ${p.label ?? "answer"}\n\n${p.text.join("")}`).join("\n\n");
  }
}

/**
 * Records one attempt. `begin(n)` opens it once the attempt is counted; each model call gets a
 * `CallTrace` whose `onChunk` feeds the partial files; `close` writes the final record.
 */
export class AttemptRecorder {
  readonly deps: AttemptDeps;
  private n = 0;
  private record: AttemptRecord | null = null;
  private readonly reasoning = new Sections();
  private readonly answer = new Sections();
  private dirty = { reasoning: false, answer: false };
  private unflushedBytes = 0;
  private written = { reasoning: false, answer: false };
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly streaming = new Set<InFlightCall>();
  private openChain: Promise<void> = Promise.resolve();
  /** The record this recorder closed last (so the item's total need not read it back). */
  closed: AttemptRecord | null = null;

  constructor(deps: AttemptDeps) {
    this.deps = deps;
  }

  private get now() {
    return (this.deps.now ?? Date.now)();
  }

  /** The attempt number, once begun (0 before). */
  get number(): number {
    return this.n;
  }

  get begun(): boolean {
    return this.record !== null;
  }

  private key(file: string) {
    return keys.item(this.deps.jobId, this.deps.itemId, `attempts/${this.n}.${file}`);
  }

  /** Opens attempt `n`: its open record names the partial files to come (written with the first call). */
  begin(n: number): void {
    this.n = n;
    this.record = {
      version: 1,
      attempt: n,
      status: "running",
      owner: this.deps.owner,
      startedAt: iso(this.now),
      finishedAt: null,
      calls: [],
      usage: zeroUsage(),
      usageEstimated: false,
      cost: 0,
      currency: this.deps.currency,
      finishReason: null,
      requestId: null,
      error: null,
      reasoning: null,
      answer: null,
      inFlightCalls: [],
    };
    this.streaming.clear();
    this.timer = setInterval(() => {
      if (this.dirty.reasoning || this.dirty.answer) void this.flush();
    }, this.deps.flush.ms);
    this.timer.unref();
  }

  /** One model call of this attempt; its chunks go to the partial files. */
  async startCall(shape: CallShape): Promise<CallTrace> {
    if (!this.record) throw new Error("AttemptRecorder.startCall before begin");
    const sections = { reasoning: this.reasoning.begin(shape.label), answer: this.answer.begin(shape.label) };
    const flight: InFlightCall = { label: shape.label, reservedCost: shape.reservedCost, inputTokens: shape.inputTokens };
    this.streaming.add(flight);
    this.showInFlight();
    await this.writeOpen();
    return new CallTrace(this, shape, this.now, sections, flight);
  }

  private showInFlight(): void {
    this.record!.inFlightCalls = [...this.streaming];
  }

  /** @internal CallTrace feeds text here, into its own sections. */
  take(p: StreamProgress, sections: { reasoning: Section; answer: Section }): void {
    if (p.reasoning) {
      sections.reasoning.text.push(p.reasoning);
      this.dirty.reasoning = true;
    }
    if (p.answer) {
      sections.answer.text.push(p.answer);
      this.dirty.answer = true;
    }
    this.unflushedBytes += Buffer.byteLength(p.reasoning) + Buffer.byteLength(p.answer);
    if (this.unflushedBytes >= this.deps.flush.bytes && !this.queued) void this.flush();
  }

  /**
   * @internal CallTrace reports its end here. A failed call's partial trace and record are written
   * at once (together); a call that succeeded is written beside the journal's copy of its answer.
   */
  async ended(call: CallRecord, flight: InFlightCall, write: boolean): Promise<void> {
    const r = this.record!;
    r.calls.push(call);
    this.streaming.delete(flight);
    this.showInFlight();
    r.usage = addUsage(r.usage, call.usage);
    r.usageEstimated ||= call.usageEstimated;
    r.cost = round(r.cost + call.cost);
    r.finishReason = call.finishReason;
    r.requestId = call.requestId ?? r.requestId;
    if (write) await Promise.all([this.flush(), this.writeOpen()]);
  }

  /** Writes what changed since the last flush; flushes never overlap, and a later one always carries the newer text. */
  flush(): Promise<void> {
    this.queued = true;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      this.unflushedBytes = 0;
      const { store, itemId } = this.deps;
      const jobs: Promise<void>[] = [];
      for (const kind of ["reasoning", "answer"] as const) {
        if (!this.dirty[kind]) continue;
        this.dirty[kind] = false;
        const text = (kind === "reasoning" ? this.reasoning : this.answer).render();
        jobs.push(store.put(this.key(`${kind}.md`), text, "text/markdown; charset=utf-8"));
        this.written[kind] = true;
        this.record![kind] = relPath(itemId, `attempts/${this.n}.${kind}.md`);
      }
      try {
        await Promise.all(jobs);
      } catch (e) {
        // A lost flush costs only trace text; the next one rewrites the whole file.
        this.deps.log.warn({ jobId: this.deps.jobId, itemId, attempt: this.n, error: String(e) }, "partial trace not written");
      }
    });
    return this.chain;
  }

  /** Writes the open record as it is now; writes are chained so that a later state never lands before an earlier one. */
  private writeOpen(): Promise<void> {
    const key = this.key("open.json");
    const snapshot = structuredClone(this.record);
    this.openChain = this.openChain.then(async () => {
      try {
        await this.deps.store.putJson(key, snapshot);
      } catch (e) {
        this.deps.log.warn({ jobId: this.deps.jobId, itemId: this.deps.itemId, attempt: this.n, error: String(e) }, "attempt record not written");
      }
    });
    return this.openChain;
  }

  /**
   * Ends the attempt: `attempts/<n>.json` replaces the open record. With `final` (the item's final
   * files, written beside this record), the record names the final files, so a finished item has
   * one trace; otherwise the partial files stay where the record says. Returns the record and the
   * removal of the files it supersedes (the open record, and with `final` the partial copies),
   * for the caller to run once nothing depends on them.
   */
  async close(
    status: Exclude<AttemptStatus, "running" | "died">,
    error: AttemptRecord["error"],
    final?: { reasoning: string | null; answer: string | null },
  ): Promise<{ record: AttemptRecord; removeSuperseded: () => Promise<unknown> } | null> {
    const r = this.record;
    if (!r) return null;
    if (this.timer) clearInterval(this.timer);
    // The final files supersede the partial text: only a flush already under way is waited for.
    await (final ? this.chain : this.flush());
    r.status = status;
    r.error = error;
    r.finishedAt = iso(this.now);
    r.inFlightCalls = [];
    await this.openChain;
    const { store } = this.deps;
    const partials = final ? (["reasoning", "answer"] as const).filter((k) => this.written[k]) : [];
    if (final) {
      r.reasoning = final.reasoning;
      r.answer = final.answer;
    }
    await store.putJson(this.key("json"), r);
    const superseded = [...partials.map((k) => this.key(`${k}.md`)), this.key("open.json")];
    this.record = null;
    this.closed = r;
    return { record: r, removeSuperseded: () => Promise.all(superseded.map((key) => store.delete(key).catch(() => undefined))) };
  }
}

/** One call's view of the recorder: its chunks, and how it ended. */
export class CallTrace {
  private requestId: string | null = null;
  private finishReason: string | null = null;
  private firstChunkAt: number | null = null;
  private reasoningText: string[] = [];
  private answerText: string[] = [];
  private readonly recorder: AttemptRecorder;
  readonly shape: CallShape;
  private readonly startedAt: number;
  private readonly sections: { reasoning: Section; answer: Section };
  private readonly flight: InFlightCall;

  constructor(recorder: AttemptRecorder, shape: CallShape, startedAt: number, sections: { reasoning: Section; answer: Section }, flight: InFlightCall) {
    this.recorder = recorder;
    this.shape = shape;
    this.startedAt = startedAt;
    this.sections = sections;
    this.flight = flight;
  }

  /** Pass to ModelClient.chat as `onChunk`. */
  readonly onChunk = (p: StreamProgress): void => {
    this.requestId ??= p.requestId;
    this.finishReason = p.finishReason ?? this.finishReason;
    this.firstChunkAt ??= p.firstChunkAt;
    if (p.reasoning) this.reasoningText.push(p.reasoning);
    if (p.answer) this.answerText.push(p.answer);
    this.recorder.take(p, this.sections);
  };

  /** Whether the provider started answering (so the call is billed, at least in part). */
  get started(): boolean {
    return this.firstChunkAt !== null;
  }

  /** Time to first chunk and decode time with the tokens decoded: what the rate estimates learn from. */
  timings(end: number): { firstChunkMs: number | null; decodeMs: number | null } {
    return { firstChunkMs: this.firstChunkAt === null ? null : this.firstChunkAt - this.startedAt, decodeMs: this.firstChunkAt === null ? null : end - this.firstChunkAt };
  }

  /**
   * The usage of a call cut off before its usage chunk, counted from what arrived: the whole
   * input (uncached: the cache hit is not known), and the streamed text as output. A call that
   * never started streaming is taken as not billed.
   */
  estimatedUsage(): Usage {
    if (!this.started) return zeroUsage();
    const reasoningTokens = countTokens(this.reasoningText.join(""));
    return { inputTokens: this.shape.inputTokens, outputTokens: reasoningTokens + countTokens(this.answerText.join("")), reasoningTokens, cachedTokens: 0 };
  }

  private base(end: number) {
    const t = this.timings(end);
    return {
      label: this.shape.label,
      maxOutputTokens: this.shape.maxOutputTokens,
      thinkingBudget: this.shape.thinkingBudget ?? null,
      maxCompletionTokens: this.shape.maxCompletionTokens ?? null,
      limitedByDeadline: this.shape.limitedByDeadline,
      inputTokens: this.shape.inputTokens,
      startedAt: iso(this.startedAt),
      firstChunkMs: t.firstChunkMs,
      durationMs: end - this.startedAt,
    };
  }

  /** The call's record; its open record is written again with it, so a worker dying next leaves it counted. */
  async succeeded(result: ChatResult, end: number): Promise<CallRecord> {
    const cost = this.recorder.deps.price({ ...result.usage, cacheType: result.cacheType });
    const rec: CallRecord = { ...this.base(end), requestId: result.requestId, finishReason: result.finishReason, usage: result.usage, usageEstimated: false, cost, error: null };
    await this.recorder.ended(rec, this.flight, true);
    return rec;
  }

  async failed(error: { kind: ErrorCode; message: string; requestId?: string }, end: number): Promise<CallRecord> {
    const usage = this.estimatedUsage();
    const rec: CallRecord = {
      ...this.base(end),
      requestId: error.requestId ?? this.requestId,
      finishReason: this.finishReason,
      usage,
      usageEstimated: this.started,
      cost: this.recorder.deps.price(usage),
      error: { kind: error.kind, message: error.message },
    };
    await this.recorder.ended(rec, this.flight, true);
    return rec;
  }
}

const round = (n: number) => Number(n.toFixed(10));

/**
 * A delivery that finds attempt `n` still open took over from a worker that died during it
 * (killed, out of memory, out of time). Closes the attempt as `died`, with the in-flight call's
 * usage counted from its partial files, and returns what the caller must settle in the ledger.
 */
export async function closeAbandonedAttempt(
  deps: Pick<AttemptDeps, "store" | "jobId" | "itemId" | "price" | "now">,
  n: number,
): Promise<{ record: AttemptRecord; reservedCost: number; countedCost: number } | null> {
  const { store } = deps;
  const at = (file: string) => keys.item(deps.jobId, deps.itemId, `attempts/${n}.${file}`);
  const open = await store.getJson<AttemptRecord>(at("open.json"));
  if (!open) return null;
  if (await store.exists(at("json"))) {
    await store.delete(at("open.json")).catch(() => undefined);
    return null;
  }
  const text = async (file: string) => new TextDecoder().decode((await store.getBytes(at(file))) ?? new Uint8Array());
  const flying = open.inFlightCalls ?? [];
  let countedCost = 0;
  if (flying.length) {
    const files = { reasoning: await text("reasoning.md"), answer: await text("answer.md") };
    // Every section heading the files can hold: calls that ended and calls still in flight.
    const labels = [...open.calls.map((c) => c.label), ...flying.map((f) => f.label)];
    for (const inFlight of flying) {
      // Only this call's section: earlier calls of the attempt were recorded when they ended.
      const reasoning = sectionOf(files.reasoning, inFlight.label, labels);
      const answer = sectionOf(files.answer, inFlight.label, labels);
      // The request had left: the provider may bill its whole input (uncached: the hit is not
      // known) and what it streamed, whether or not a chunk arrived before the worker died.
      const reasoningTokens = countTokens(reasoning);
      const usage: Usage = { inputTokens: inFlight.inputTokens, outputTokens: reasoningTokens + countTokens(answer), reasoningTokens, cachedTokens: 0 };
      const cost = deps.price(usage);
      countedCost += cost;
      open.calls.push({
        label: inFlight.label,
        requestId: null,
        finishReason: null,
        usage,
        usageEstimated: true,
        cost,
        maxOutputTokens: 0,
        thinkingBudget: null,
        maxCompletionTokens: null,
        limitedByDeadline: false,
        inputTokens: inFlight.inputTokens,
        startedAt: open.startedAt,
        firstChunkMs: null,
        durationMs: null,
        error: { kind: "worker_crashed", message: "the worker stopped while this call streamed" },
      });
      open.usage = addUsage(open.usage, usage);
      open.usageEstimated = true;
    }
    open.cost = round(open.cost + countedCost);
  }
  const partial = async (kind: "reasoning" | "answer") => ((await store.exists(at(`${kind}.md`))) ? relPath(deps.itemId, `attempts/${n}.${kind}.md`) : null);
  const record: AttemptRecord = {
    ...open,
    reasoning: await partial("reasoning"),
    answer: await partial("answer"),
    status: "died",
    finishedAt: iso((deps.now ?? Date.now)()),
    error: { kind: "worker_crashed", message: "the worker stopped during this attempt (killed, out of memory or out of time); its partial trace is kept" },
    inFlightCalls: [],
  };
  await store.putJson(at("json"), record);
  await store.delete(at("open.json")).catch(() => undefined);
  return { record, reservedCost: flying.reduce((sum, f) => sum + f.reservedCost, 0), countedCost };
}

/**
 * One call's text in a partial file: all of it for a lone unlabelled call, else its `## label`
 * section, up to the next section of a known label (sections of calls that streamed together).
 */
function sectionOf(file: string, label: string | null, labels: (string | null)[]): string {
  if (labels.length <= 1 && label === null) return file;
  const heading = (l: string | null) => `## ${l ?? "answer"}\n\n`;
  const at = file.lastIndexOf(heading(label));
  if (at < 0) return "";
  const from = at + heading(label).length;
  const ends = labels.filter((l) => l !== label).map((l) => file.indexOf(`\n\n${heading(l)}`, from)).filter((i) => i >= 0);
  return file.slice(from, ends.length ? Math.min(...ends) : undefined);
}

/** Cost and usage of the item's earlier attempts (attempts/1..n-1), which the final result includes. */
export async function earlierAttempts(store: ObjectStore, jobId: string, itemId: string, before: number, known?: AttemptRecord | null): Promise<{ usage: Usage; cost: number; estimated: boolean }> {
  let usage = zeroUsage();
  let cost = 0;
  let estimated = false;
  for (let k = 1; k < before; k++) {
    const r = known?.attempt === k ? known : await store.getJson<AttemptRecord>(keys.attempt(jobId, itemId, k));
    if (!r || !r.usage) continue;
    usage = addUsage(usage, r.usage);
    cost += r.cost;
    estimated ||= r.usageEstimated === true;
  }
  return { usage, cost: round(cost), estimated };
}
