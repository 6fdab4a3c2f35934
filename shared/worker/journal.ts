/**
 * The item's paid calls, kept the moment each returns (`items/<itemId>/attempts/calls/<key>.json`): a call
 * that returned is never paid again. When a later delivery of the item plans the same request
 * (the same label and messages), it takes the kept answer instead of calling the model: the
 * second question of an item whose first delivery was refused on it, the samples a cost cap
 * interrupted, the calls a killed worker had finished.
 *
 * A kept call's cost stays in the attempt record of the delivery that paid it; the reuse adds none.
 * Once the item has its result the journal is removed: the answer's own files hold what it said.
 */
import { createHash } from "node:crypto";
import type { ChatResult } from "../model/client.ts";
import type { CallPlan } from "../model/plan.ts";
import { keys, type ObjectStore } from "../run/store.ts";

/** Under attempts/, with the rest of what an item's attempts leave, so the worker's delete permission covers it. */
const JOURNAL = "attempts/calls/";

interface KeptCall {
  version: 1;
  label: string | null;
  result: ChatResult;
}

export class CallJournal {
  private readonly store: ObjectStore;
  private readonly jobId: string;
  private readonly itemId: string;
  private readonly kept: Map<string, ChatResult>;
  /** Calls answered from the journal in this delivery, by label. */
  readonly reused: (string | null)[] = [];

  private constructor(store: ObjectStore, jobId: string, itemId: string, kept: Map<string, ChatResult>) {
    this.store = store;
    this.jobId = jobId;
    this.itemId = itemId;
    this.kept = kept;
  }

  /** An empty journal (no earlier delivery sent a request), or the calls earlier deliveries kept. */
  static async open(store: ObjectStore, jobId: string, itemId: string, earlierAttempts: number): Promise<CallJournal> {
    const kept = new Map<string, ChatResult>();
    if (earlierAttempts > 0) {
      for (const key of await store.listKeys(keys.item(jobId, itemId, JOURNAL))) {
        const call = await store.getJson<KeptCall>(key);
        if (call?.version === 1) kept.set(key.slice(key.lastIndexOf("/") + 1, -".json".length), call.result);
      }
    }
    return new CallJournal(store, jobId, itemId, kept);
  }

  /** The kept answer to this request, if an earlier delivery paid for it. */
  reuse(plan: CallPlan, label: string | null): ChatResult | undefined {
    const result = this.kept.get(callKey(plan, label));
    if (result) this.reused.push(label);
    return result;
  }

  /** Keeps a call that returned; the caller retries it in place when S3 fails. */
  async keep(plan: CallPlan, label: string | null, result: ChatResult): Promise<void> {
    const key = callKey(plan, label);
    this.kept.set(key, result);
    await this.store.putJson(keys.item(this.jobId, this.itemId, `${JOURNAL}${key}.json`), { version: 1, label, result } satisfies KeptCall);
  }

  /** Removes the kept calls (the item has its result). */
  async clear(): Promise<void> {
    await Promise.all([...this.kept.keys()].map((key) => this.store.delete(keys.item(this.jobId, this.itemId, `${JOURNAL}${key}.json`))));
  }
}

/**
 * The call's label (as a file-name-safe slug) and a digest of what it asks: the same request gets
 * the same key. The item's documents never change, so the digest takes the prompt's size and its
 * last message (the question, a partial answer, a tool's output) rather than hashing megabytes.
 */
export function callKey(plan: CallPlan, label: string | null): string {
  const slug = (label ?? "answer").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "call";
  const asked = [label, plan.inputTokens, plan.messages.length, plan.messages.at(-1) ?? null, plan.maxOutputTokens, plan.thinkingBudget ?? null, plan.extras ?? null];
  const digest = createHash("sha256").update(JSON.stringify(asked)).digest("hex").slice(0, 16);
  return `${slug}-${digest}`;
}
