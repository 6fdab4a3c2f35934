// What one delivery of one item carries from step to step (lifecycle.ts): the job and the item,
// the item's record as the claim found it, and the attempt's recorder, journal and pending work.
import type { JobItem, JobRecord } from "../job/record.ts";
import type { ItemRecord } from "../run/coord.ts";
import type { ObjectStore } from "../run/store.ts";
import type { ModelInfo } from "../model/catalog.ts";
import type { Usage } from "../model/usage.ts";
import type { AttemptRecorder } from "./attempt.ts";
import type { TaskContext, WorkerDeps } from "./context.ts";
import type { CallJournal } from "./journal.ts";
import type { PendingWork } from "./pending.ts";
import type { ItemSteps } from "./steps.ts";

export interface Delivery {
  deps: WorkerDeps;
  ctx: TaskContext;
  /** The job as submitted, with a retry's larger answer cap when the task carries one. */
  job: JobRecord;
  item: JobItem;
  store: ObjectStore;
  /** The item's record as this delivery's claim found it. */
  claimed: ItemRecord;
  /** The attempt this delivery makes if it sends a request (its calls, partial traces, record). */
  recorder: AttemptRecorder;
  /** Calls earlier deliveries paid for, and the ones this one pays for. */
  journal: CallJournal;
  /** Ledger settling and file removal that wait for the item's result. */
  pending: PendingWork;
  steps: ItemSteps;
  now: () => number;
  startedAt: number;
  /** The model the item runs on, once the answer step chose it: the job's, or its fallbackModel. */
  model: ModelInfo | null;
  /** A usage's cost at the item model's prices, in `currency` (the worker's endpoint's region). */
  price: (u: Usage & { cacheType?: "implicit" | "ephemeral" }) => number;
  currency: string;
  /** The documents as read and counted (set by the answer step), for the item's result. */
  documents?: DocumentInfo[];
}

/** The item's documents as the item's result lists them. */
export type DocumentInfo = { source: string; format?: string; bytes?: number; chars?: number; tokens?: number; sha256?: string };

export const logContext = (d: Pick<Delivery, "job" | "item">) => ({ jobId: d.job.jobId, itemId: d.item.id });
