/**
 * Fault injection: random faults from a seeded spec (`--faults`), and programmatic
 * `injectFaults({kind, count})` that fail the next `count` chat requests.
 *
 * Spec grammar (comma- or space-separated items, order matters only for the PRNG walk):
 *   item   := KIND ":" PROB | "seed=" INT
 *   PROB   := a number in [0, 1], or a percentage like "5%"
 * e.g. `500:0.1,503:0.05,midstream:0.05,429:0.1,seed=7`. Each chat request draws one number
 * u in [0, 1) from a mulberry32 PRNG (seed default 1) and fails with the first kind whose
 * cumulative probability exceeds u; the probabilities must sum to at most 1.
 */
import { mulberry32 } from "../random.ts";

export const FAULT_KINDS = [
  "500", // HTTP 500 internal_error
  "timeout", // HTTP 500 RequestTimeOut
  "503", // HTTP 503 ModelUnavailable
  "429", // HTTP 429 limit_requests
  "burst", // HTTP 429 limit_burst_rate
  "quota", // HTTP 429 insufficient_quota
  "401", // HTTP 401 invalid_api_key
  "403", // HTTP 403 AccessDenied
  "free_tier", // HTTP 403 AllocationQuota.FreeTierOnly: free quota used up, "use free tier only" on
  "arrearage", // HTTP 400 Arrearage
  "prepaid_overdue", // HTTP 429 PrepaidBillOverdue (billing: never clears by waiting)
  "postpaid_overdue", // HTTP 429 PostpaidBillOverdue
  "not_purchased", // HTTP 429 CommodityNotPurchased (the workspace has not subscribed)
  "free_quota", // HTTP 429 "Free allocated quota exceeded." (free quota gone, no pay-as-you-go)
  "429_unknown", // HTTP 429 with a code no table lists
  "404", // HTTP 404 model_not_found
  "moderation", // input moderation: HTTP 400 with an SSE body (JSON body for non-streaming calls)
  "midstream", // 200, some deltas, then `data: {"error":{data_inspection_failed …}}` and no [DONE]
  "drop", // 200, some deltas, then the socket is destroyed
  "malformed", // 200, some deltas, then a `data:` line that is not JSON, and the stream ends
  "reset", // the socket is destroyed before any response
  "schema", // 200, but a json_schema answer that breaks the schema (required properties dropped); other formats unaffected
  "citations", // 200, but with the citation instruction two of every four cited passages are invented (not in the document)
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

const ALIASES: Record<string, FaultKind> = {
  internal_error: "500",
  RequestTimeOut: "timeout",
  ModelUnavailable: "503",
  ModelServingError: "503",
  limit_requests: "429",
  "429r": "429",
  limit_burst_rate: "burst",
  "429b": "burst",
  surge: "burst",
  insufficient_quota: "quota",
  "429q": "quota",
  invalid_api_key: "401",
  AccessDenied: "403",
  "AllocationQuota.FreeTierOnly": "free_tier",
  "allocationquota.freetieronly": "free_tier",
  Arrearage: "arrearage",
  PrepaidBillOverdue: "prepaid_overdue",
  PostpaidBillOverdue: "postpaid_overdue",
  CommodityNotPurchased: "not_purchased",
  billing: "prepaid_overdue",
  model_not_found: "404",
  data_inspection_failed: "moderation",
  error_event: "midstream",
  disconnect: "drop",
  garbled: "malformed",
  schema_violation: "schema",
  invalid_json: "schema",
};

export function toFaultKind(s: string): FaultKind {
  const t = s.trim();
  if ((FAULT_KINDS as readonly string[]).includes(t)) return t as FaultKind;
  const a = ALIASES[t] ?? ALIASES[t.toLowerCase()];
  if (a) return a;
  throw new Error(`unknown fault kind '${s}'; known kinds: ${FAULT_KINDS.join(", ")} (aliases: ${Object.keys(ALIASES).join(", ")})`);
}

export interface FaultRule {
  kind: FaultKind;
  probability: number;
}

export interface FaultSpec {
  seed: number;
  rules: FaultRule[];
}

/** Parses a `--faults` spec; throws an Error naming the offending item. */
export function parseFaultSpec(spec: string): FaultSpec {
  const out: FaultSpec = { seed: 1, rules: [] };
  for (const raw of spec.split(/[\s,]+/)) {
    const item = raw.trim();
    if (!item) continue;
    const seed = /^seed=(-?\d+)$/i.exec(item);
    if (seed) {
      out.seed = Number(seed[1]);
      continue;
    }
    const m = /^([^:=]+):([0-9.]+)(%?)$/.exec(item);
    if (!m) throw new Error(`bad fault spec item '${item}': expected KIND:PROBABILITY (e.g. 500:0.1 or 503:5%) or seed=N`);
    const p = Number(m[2]) / (m[3] ? 100 : 1);
    if (!Number.isFinite(p) || p < 0 || p > 1) throw new Error(`bad fault spec item '${item}': probability must be within [0, 1]`);
    out.rules.push({ kind: toFaultKind(m[1]!), probability: p });
  }
  const total = out.rules.reduce((s, r) => s + r.probability, 0);
  if (total > 1 + 1e-9) throw new Error(`fault probabilities sum to ${total}; at most 1 is possible`);
  return out;
}

export interface InjectedFault {
  kind: FaultKind | string;
  /** How many of the next chat requests fail this way (default 1). */
  count?: number;
  /** For midstream/drop: content/reasoning deltas sent before the failure (default: half of them, at least 1). */
  afterDeltas?: number;
}

export interface PlannedFault {
  kind: FaultKind;
  afterDeltas?: number;
}

export class FaultPlan {
  private readonly queue: { kind: FaultKind; left: number; afterDeltas?: number }[] = [];
  private readonly rules: FaultRule[];
  private readonly rng: () => number;

  constructor(spec?: FaultSpec | string) {
    const s = typeof spec === "string" ? parseFaultSpec(spec) : (spec ?? { seed: 1, rules: [] });
    this.rules = s.rules;
    this.rng = mulberry32(s.seed);
  }

  inject(faults: InjectedFault | InjectedFault[]): void {
    for (const f of Array.isArray(faults) ? faults : [faults]) {
      const count = f.count ?? 1;
      if (!Number.isInteger(count) || count < 0) throw new Error(`injectFaults: count must be a non-negative integer, got ${f.count}`);
      if (count > 0) this.queue.push({ kind: toFaultKind(f.kind), left: count, afterDeltas: f.afterDeltas });
    }
  }

  /** Clears injected faults (the random spec stays). */
  clear(): void {
    this.queue.length = 0;
  }

  /** The fault for the next chat request, or null. Injected faults first, in order. */
  next(): PlannedFault | null {
    const head = this.queue[0];
    if (head) {
      if (--head.left <= 0) this.queue.shift();
      return { kind: head.kind, afterDeltas: head.afterDeltas };
    }
    if (this.rules.length === 0) return null;
    const u = this.rng();
    let acc = 0;
    for (const r of this.rules) {
      acc += r.probability;
      if (u < acc) return { kind: r.kind };
    }
    return null;
  }
}
