/**
 * What a call is planned from: the job fields the prompt and its budget read. The job file's
 * schema (job/schema.ts) produces more; a JobSpec fits these, so the model layer names no job type.
 */
export interface ThinkingSetting {
  enabled: boolean;
  budget?: number | undefined;
}

export interface PromptQuestion {
  id: string;
  ask: string;
  thinking?: ThinkingSetting | undefined;
}

export interface PromptSpec {
  system?: string | undefined;
  questions?: PromptQuestion[] | undefined;
  prompt?: string | undefined;
  output: { format: "text" | "json" };
  packing: "per-document" | "all-documents" | "packed";
  /** `verify`: the prompt asks for page-and-quote citations (shared/citations), which the worker checks. */
  citations?: "off" | "verify" | undefined;
}

export interface PlanSpec extends PromptSpec {
  thinking: ThinkingSetting;
  maxOutputTokens: number;
  truncate: "none" | "middle";
  cache?: "implicit" | "explicit" | undefined;
}
