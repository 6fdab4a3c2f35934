import OpenAI from "openai";
import { ModelError } from "../errors.ts";
import type { ChatMessage } from "./prompt.ts";
import { classifyModelError } from "./errors.ts";
import type { Usage } from "./usage.ts";

export { addUsage, zeroUsage, type Usage } from "./usage.ts";

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  maxOutputTokens: number;
  thinking: { enabled: boolean; budget?: number };
  json?: { schema: Record<string, unknown> };
  // --- reasoning features (issue 12): tools for the code tool loop, a seed per sample ---
  /** Functions offered (OpenAI `tools` format). */
  tools?: { type: "function"; function: { name: string; description?: string; parameters?: Record<string, unknown> } }[];
  /** `none` asks for an answer without tools; a name forces that function (refused in thinking mode). */
  toolChoice?: "auto" | "none" | { name: string };
  /** Makes k samples of one call differ reproducibly (0..2^31-1). */
  seed?: number;
}

/** A function call the model made (finish_reason "tool_calls"); `arguments` is its JSON text. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface ChatResult {
  /** "ephemeral" when the provider applied an explicit cache block (hits billed at the explicit rate). */
  cacheType: "implicit" | "ephemeral";
  reasoning: string;
  answer: string;
  finishReason: string | null;
  usage: Usage;
  requestId: string | null;
  /** Tool calls, in index order (absent or empty when the model answered). */
  toolCalls?: ToolCall[];
}

export interface ModelClient {
  chat(req: ChatRequest, opts?: { signal?: AbortSignal; onDelta?: (d: { reasoningChars: number; answerChars: number }) => void }): Promise<ChatResult>;
}

export interface ModelClientOptions {
  apiKey: string;
  baseURL: string;
  /** Per-call ceiling; the worker's deadline signal usually ends a call first. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** Body keys that Model Studio accepts on top of the OpenAI schema (sent unchanged by the SDK). */
interface QwenExtensions {
  enable_thinking?: boolean;
  thinking_budget?: number;
}

/** Explicit-cache fields Model Studio adds to prompt_tokens_details (reference §5). */
interface QwenCacheDetails {
  cache_creation_input_tokens?: number;
  cache_type?: string;
}

interface QwenDelta {
  content?: string | null;
  reasoning_content?: string | null;
  tool_calls?: { index?: number; id?: string; function?: { name?: string; arguments?: string } }[];
}

/**
 * Streams one chat completion through the `openai` SDK. The SDK's own retries are off
 * (`maxRetries: 0`): retry policy is longdoc's, and the SDK's would multiply it.
 */
export function createModelClient(o: ModelClientOptions): ModelClient {
  const client = new OpenAI({ apiKey: o.apiKey, baseURL: o.baseURL, maxRetries: 0, timeout: o.timeoutMs ?? 14 * 60_000, fetch: o.fetch });
  return {
    async chat(req, { signal, onDelta } = {}) {
      const body: OpenAI.ChatCompletionCreateParamsStreaming & QwenExtensions = {
        model: req.model,
        messages: req.messages as OpenAI.ChatCompletionMessageParam[],
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: req.maxOutputTokens,
        enable_thinking: req.thinking.enabled,
        ...(req.thinking.enabled && req.thinking.budget ? { thinking_budget: req.thinking.budget } : {}),
        ...(req.json
          ? { response_format: { type: "json_schema", json_schema: { name: "answer", schema: req.json.schema, strict: true } } }
          : {}),
        ...(req.seed !== undefined ? { seed: req.seed } : {}),
        ...(req.tools?.length
          ? {
              tools: req.tools,
              ...(req.toolChoice ? { tool_choice: typeof req.toolChoice === "string" ? req.toolChoice : { type: "function" as const, function: { name: req.toolChoice.name } } } : {}),
            }
          : {}),
      };
      const toolCalls: ToolCall[] = [];
      const reasoning: string[] = [];
      const answer: string[] = [];
      let reasoningChars = 0;
      let answerChars = 0;
      let finishReason: string | null = null;
      let usage: OpenAI.CompletionUsage | undefined;
      let requestId: string | null = null;
      try {
        const stream = await client.chat.completions.create(body, { signal });
        for await (const chunk of stream) {
          requestId ??= chunk.id;
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices[0];
          if (!choice) continue;
          const delta = choice.delta as QwenDelta;
          if (delta.reasoning_content) {
            reasoning.push(delta.reasoning_content);
            reasoningChars += delta.reasoning_content.length;
          }
          if (delta.content) {
            answer.push(delta.content);
            answerChars += delta.content.length;
          }
          // A tool call streams as pieces: the first names it (index, id, name), later ones append arguments.
          for (const t of delta.tool_calls ?? []) {
            const at = t.index ?? 0;
            const call = (toolCalls[at] ??= { id: "", name: "", arguments: "" });
            if (t.id) call.id = t.id;
            if (t.function?.name) call.name += t.function.name;
            if (t.function?.arguments) call.arguments += t.function.arguments;
          }
          if (choice.finish_reason) finishReason = choice.finish_reason;
          onDelta?.({ reasoningChars, answerChars });
        }
      } catch (e) {
        throw classifyModelError(e);
      }
      // An abort ends `for await` quietly; an unfinished stream must not pass for a result.
      if (signal?.aborted) throw new ModelError("deadline", "the model call was cut off before the stream finished", { retryable: true });
      if (!usage) throw new ModelError("model_error", "the stream ended without its usage chunk (cut off?)", { retryable: true });
      const details = usage.prompt_tokens_details as (OpenAI.CompletionUsage["prompt_tokens_details"] & QwenCacheDetails) | undefined;
      const cacheWriteTokens = details?.cache_creation_input_tokens ?? 0;
      return {
        cacheType: details?.cache_type === "ephemeral" ? "ephemeral" : "implicit",
        reasoning: reasoning.join(""),
        answer: answer.join(""),
        finishReason,
        requestId,
        ...(toolCalls.length ? { toolCalls: toolCalls.filter(Boolean) } : {}),
        usage: {
          inputTokens: usage.prompt_tokens,
          outputTokens: usage.completion_tokens,
          reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0,
          cachedTokens: details?.cached_tokens ?? 0,
          ...(cacheWriteTokens > 0 ? { cacheWriteTokens } : {}),
        },
      };
    },
  };
}
