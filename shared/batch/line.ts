/**
 * One batch line: the request a realtime call of the same plan would send (the same messages,
 * caps, `enable_thinking` always explicit, the same JSON schema), unstreamed, and the answer line
 * the provider returns for it, read back into the worker's ChatResult.
 */
import type { CallPlan } from "../model/plan.ts";
import { completionCap } from "../model/budget.ts";
import type { ChatResult } from "../model/client.ts";

export const BATCH_ENDPOINT = "/v1/chat/completions";

export interface BatchLine {
  custom_id: string;
  method: "POST";
  url: typeof BATCH_ENDPOINT;
  body: Record<string, unknown>;
}

export function batchLine(customId: string, model: string, plan: CallPlan, outputSchema: Record<string, unknown> | null): BatchLine {
  const thinking = plan.thinkingBudget !== undefined;
  // One cap on reasoning plus answer, as the realtime call sends it (docs/qwen-api.md §3).
  const maxCompletionTokens = completionCap({ maxOutputTokens: plan.maxOutputTokens, maxCompletionTokens: undefined, thinking: { enabled: thinking, budget: plan.thinkingBudget } });
  return {
    custom_id: customId,
    method: "POST",
    url: BATCH_ENDPOINT,
    body: {
      model,
      messages: plan.messages,
      max_completion_tokens: maxCompletionTokens,
      enable_thinking: thinking,
      ...(thinking && plan.thinkingBudget ? { thinking_budget: plan.thinkingBudget } : {}),
      ...(outputSchema ? { response_format: { type: "json_schema", json_schema: { name: "answer", schema: outputSchema, strict: true } } } : {}),
    },
  };
}

/** A line of the output file (`response.body` a chat completion) or of the error file. */
export interface OutputLine {
  id?: string;
  custom_id: string;
  response?: { status_code?: number; request_id?: string; body?: ChatCompletionBody } | null;
  error?: { code?: string; message?: string } | null;
}

interface ChatCompletionBody {
  id?: string;
  choices?: { message?: { content?: string | null; reasoning_content?: string | null }; finish_reason?: string | null }[];
  usage?: {
    prompt_tokens?: number;
    completion_tokens?: number;
    completion_tokens_details?: { reasoning_tokens?: number };
    prompt_tokens_details?: { cached_tokens?: number; cache_creation_input_tokens?: number; cache_type?: string };
  };
  error?: { code?: string; message?: string };
}

/** The answer a line carries, or why it carries none (an error line, a non-200 response, a body without usage). */
export function readOutputLine(line: OutputLine): { result: ChatResult } | { error: { code: string; message: string; requestId: string | null } } {
  const requestId = line.response?.request_id ?? line.response?.body?.id ?? null;
  const body = line.response?.body;
  const status = line.response?.status_code ?? (body ? 200 : 0);
  const fault = line.error ?? (status !== 200 ? body?.error ?? { code: String(status), message: `status ${status}` } : null);
  if (fault || !body?.usage || !body.choices?.[0]) {
    const f = fault ?? { code: "invalid_response", message: "the output line has no choices or usage" };
    return { error: { code: f.code ?? "batch_error", message: f.message ?? "the batch did not answer this request", requestId } };
  }
  const choice = body.choices[0];
  const u = body.usage;
  const written = u.prompt_tokens_details?.cache_creation_input_tokens ?? 0;
  return {
    result: {
      cacheType: u.prompt_tokens_details?.cache_type === "ephemeral" ? "ephemeral" : "implicit",
      reasoning: choice.message?.reasoning_content ?? "",
      answer: choice.message?.content ?? "",
      finishReason: choice.finish_reason ?? null,
      requestId: body.id ?? requestId,
      usage: {
        inputTokens: u.prompt_tokens ?? 0,
        outputTokens: u.completion_tokens ?? 0,
        reasoningTokens: u.completion_tokens_details?.reasoning_tokens ?? 0,
        cachedTokens: u.prompt_tokens_details?.cached_tokens ?? 0,
        ...(written > 0 ? { cacheWriteTokens: written } : {}),
      },
    },
  };
}
