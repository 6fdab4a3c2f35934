import { LongdocError } from "../errors.ts";
import type { JobSpec } from "../job/schema.ts";
import type { ModelInfo } from "../model/catalog.ts";
import { deployment } from "../settings.ts";

/**
 * How long a job needs the quota for: its calls and the tokens they reserve (input + answer cap +
 * thinking budget, the worst case each call holds in the quota schedule), over the requests and
 * tokens a minute it may use. A task waits in the queue for its turn, so a job whose need outlasts
 * the queue's retention would lose tasks that SQS expires unrun: refused before anything is queued.
 */
export interface QuotaNeed {
  /** Model calls of the job. */
  calls: number;
  /** Tokens all those calls reserve. */
  reservedTokens: number;
  /** The limits the need is measured against: the job's, within the model's account quota. */
  rpm: number;
  tpm: number;
  /** max(reservedTokens / tpm, calls / rpm), in hours. */
  hours: number;
  /** True when the figures are a floor (documents not read: their input tokens are not counted). */
  floor: boolean;
}

/** The limits a job's calls are paced by: its own caps where it sets them, never above the account's. */
export function pacingLimits(spec: JobSpec, model: Pick<ModelInfo, "rpm" | "tpm">): { rpm: number; tpm: number } {
  return { rpm: Math.min(model.rpm, spec.limits.rpm ?? Infinity), tpm: Math.min(model.tpm, spec.limits.tpm ?? Infinity) };
}

export function quotaNeed(calls: number, reservedTokens: number, limits: { rpm: number; tpm: number }, floor = false): QuotaNeed {
  const minutes = Math.max(reservedTokens / limits.tpm, calls / limits.rpm);
  return { calls, reservedTokens, rpm: limits.rpm, tpm: limits.tpm, hours: Math.round((minutes / 60) * 100) / 100, floor };
}

/** Model calls per item: one per question with `calls: per-question`, each `samples` times. */
export function callsPerItem(spec: JobSpec): number {
  const questions = spec.calls === "per-question" && spec.questions ? spec.questions.length : 1;
  return questions * spec.samples;
}

/**
 * The least a job's items can reserve without reading a document: each call holds at least its
 * answer cap, and with thinking on its thinking budget too (the worker never reserves less than
 * the context it leaves the budget, or the model's budget cap, whichever is smaller).
 */
export function quotaNeedFloor(spec: JobSpec, model: ModelInfo, items: number): QuotaNeed {
  const maxOut = Math.min(spec.maxOutputTokens, spec.thinking.enabled ? model.maxOutputTokensThinking : model.maxOutputTokens);
  const thinking = !spec.thinking.enabled
    ? 0
    : spec.thinking.budget !== undefined
      ? Math.min(spec.thinking.budget, model.maxThinkingBudget)
      : Math.max(0, Math.min(model.maxThinkingBudget, model.contextTokens - model.maxInputTokens - maxOut));
  const calls = items * callsPerItem(spec);
  return quotaNeed(calls, calls * (maxOut + thinking), pacingLimits(spec, model), true);
}

/** The task queue's retention in hours (shared/settings.ts `taskRetentionS`). */
export const retentionHours = (retentionS: number = deployment.taskRetentionS) => retentionS / 3600;

/** Refuses a job whose quota need outlasts the task queue's retention, naming both figures and what to change. */
export function assertQuotaFitsRetention(job: string, need: QuotaNeed, retentionS: number = deployment.taskRetentionS): void {
  const limit = retentionHours(retentionS);
  if (need.hours <= limit) return;
  const days = (h: number) => `${(h / 24).toFixed(1)} days`;
  throw new LongdocError(
    "job_invalid",
    `job '${job}': its calls need ${need.hours} hours (${days(need.hours)}) of quota${need.floor ? " at the least" : ""} ` +
      `(${need.calls.toLocaleString("en-US")} calls reserving ${need.reservedTokens.toLocaleString("en-US")} tokens at ${need.rpm.toLocaleString("en-US")} RPM and ${need.tpm.toLocaleString("en-US")} TPM), ` +
      `longer than the task queue keeps a waiting task (${limit} hours, ${days(limit)}); split its documents across jobs, lower maxOutputTokens or the thinking budget, or raise the quota; nothing was queued`,
  );
}
