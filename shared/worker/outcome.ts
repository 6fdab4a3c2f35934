// What the answer step (or a guard, or a failure) decided for an item: the persist step writes it.
import type { ItemCitations } from "../citations/gate.ts";
import type { ErrorCode } from "../errors.ts";
import type { ChatResult, Usage } from "../model/client.ts";
import type { CallPlan } from "../model/plan.ts";
import type { DocumentInfo } from "./delivery.ts";
import type { Sampling } from "./samples.ts";

/** The item ended without an answer: skipped (halted, cancelled, cost cap) or failed (its own fault, or the model's for good). */
export interface Ended {
  kind: "ended";
  status: "failed" | "skipped";
  error: { kind: ErrorCode; message: string };
  /** The documents as far as they were read. */
  documents?: DocumentInfo[];
}

/** The model answered: every text the item's files need, and the figures of its result. */
export interface Answered {
  kind: "answered";
  documents: DocumentInfo[];
  answer: ItemAnswer;
  /** `citations: verify`: every quote checked against the page it names (null otherwise). */
  cited: ItemCitations | null;
}

export type Outcome = Ended | Answered;

/** The item's answer: one call, or one per question over the same cached document prefix. */
export interface ItemAnswer {
  reasoning: string;
  /** Whether any call produced reasoning text (false when thinking is off). */
  hasReasoning: boolean;
  answer: string;
  usage: Usage;
  cost: number;
  /** What the cache saved against paying full input price for every call. */
  cacheSavings: number;
  tier: string;
  /** One per call, in order (a JSON repair call included). */
  finishReasons: (string | null)[];
  /** Calls that continued a cut answer (output.onTruncated: continue). */
  continuations: number;
  /** The calls that hit the output cap and were not continued. */
  cutCalls: { id: string | null; repair: boolean; maxOutputTokens: number }[];
  requestId: string | null;
  truncated: CallPlan["truncated"];
  /** JSON jobs: the answer failed the schema, and the repair call (if any) did not fix it. */
  validationError: string | null;
  repaired: boolean;
  /** One entry per sampled call (empty when the job has one sample and no tools). */
  sampling: Sampling[];
}

/** One call the answer is made of: its question, plan and result, and whether it repaired or was continued. */
export interface MadeCall {
  id: string | null;
  plan: CallPlan;
  result: ChatResult;
  repair?: boolean;
  continued?: boolean;
}
