import OpenAI from "openai";
import { ModelError } from "../errors.ts";
import type { ChatMessage } from "./prompt.ts";
import { classifyModelError, type ModelCatalogView } from "./errors.ts";
import type { Usage } from "./usage.ts";
import { completionCap } from "./budget.ts";

export { addUsage, zeroUsage, type Usage } from "./usage.ts";

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  /** The answer cap. */
  maxOutputTokens: number;
  /** With thinking on, `budget` is required: it caps the reasoning and is part of the total cap. */
  thinking: { enabled: boolean; budget?: number };
  /**
   * The cap on reasoning plus answer, sent as `max_completion_tokens` (docs/qwen-api.md §3);
   * default: the answer cap plus the thinking budget. `max_tokens` is never sent.
   */
  maxCompletionTokens?: number;
  /**
   * Structured output. `json_schema` (default) sends the schema as a strict response format; a
   * model that only has `json_object` (docs/qwen-api.md §9) gets that, with the schema appended to
   * the last user message; either way the worker validates the answer and repairs it.
   */
  json?: { schema: Record<string, unknown>; mode?: "json_schema" | "json_object" };
  // --- reasoning features: tools for the code tool loop, a seed per sample ---
  /** Functions offered (OpenAI `tools` format). */
  tools?: { type: "function"; function: { name: string; description?: string; parameters?: Record<string, unknown> } }[];
  /** `none` asks for an answer without tools; a name forces that function (refused in thinking mode). */
  toolChoice?: "auto" | "none" | { name: string };
  /** Makes k samples of one call differ reproducibly (0..2^31-1). */
  seed?: number;
  /** Body fields sent as written (a batch line's own temperature, top_p, stop, response_format...). */
  sampling?: SamplingFields;
}

/** The OpenAI body fields a batch line may carry that Model Studio takes as they are (reference §3). */
export interface SamplingFields {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  presence_penalty?: number;
  stop?: string | string[];
  response_format?: { type: "json_object" } | { type: "json_schema"; json_schema: Record<string, unknown> };
}

/** A function call the model made (finish_reason "tool_calls"); `arguments` is its JSON text. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What a stream has delivered so far; passed to `onChunk` after every chunk. */
export interface StreamProgress {
  requestId: string | null;
  /** Text of this chunk only. */
  reasoning: string;
  answer: string;
  finishReason: string | null;
  /** Epoch ms of the first chunk (time to first token = firstChunkAt - request start). */
  firstChunkAt: number;
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
  chat(req: ChatRequest, opts?: { signal?: AbortSignal; onChunk?: (p: StreamProgress) => void }): Promise<ChatResult>;
}

export interface ModelClientOptions {
  apiKey: string;
  baseURL: string;
  /** Per-call ceiling; the worker's deadline signal usually ends a call first. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Names the successors of a model the endpoint no longer serves (404). */
  catalog?: ModelCatalogView;
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
 * For a model without `json_schema`: the schema goes at the end of the last user message (after
 * the documents, so their cached prefix is unchanged), and the word "json", which `json_object`
 * requires in the messages, comes with it.
 */
function withSchemaNote(messages: ChatMessage[], schema: Record<string, unknown>): ChatMessage[] {
  const at = messages.findLastIndex((m) => m.role === "user");
  if (at < 0) return messages;
  const note = `\n\nReply with one JSON object that matches this JSON Schema:\n${JSON.stringify(schema)}`;
  return messages.map((m, i) => {
    if (i !== at) return m;
    if (typeof m.content === "string") return { ...m, content: m.content + note };
    return { ...m, content: [...m.content, { type: "text" as const, text: note }] };
  });
}

/**
 * Streams one chat completion through the `openai` SDK. The SDK's own retries are off
 * (`maxRetries: 0`): retry policy is longdoc's, and the SDK's would multiply it.
 */
export function createModelClient(o: ModelClientOptions): ModelClient {
  // logLevel off: the SDK would print a malformed chunk to stderr; longdoc reports it as an error instead.
  const client = new OpenAI({ apiKey: o.apiKey, baseURL: o.baseURL, maxRetries: 0, timeout: o.timeoutMs ?? 14 * 60_000, fetch: keepRequestId(o.fetch ?? fetch), logLevel: "off" });
  return {
    async chat(req, { signal, onChunk } = {}) {
      const body: OpenAI.ChatCompletionCreateParamsStreaming & QwenExtensions = {
        model: req.model,
        messages: (req.json?.mode === "json_object" ? withSchemaNote(req.messages, req.json.schema) : req.messages) as OpenAI.ChatCompletionMessageParam[],
        stream: true,
        stream_options: { include_usage: true },
        max_completion_tokens: completionCap(req),
        enable_thinking: req.thinking.enabled,
        ...(req.thinking.enabled && req.thinking.budget ? { thinking_budget: req.thinking.budget } : {}),
        ...(req.sampling as Pick<OpenAI.ChatCompletionCreateParamsStreaming, "temperature" | "top_p" | "presence_penalty" | "stop" | "response_format"> & { top_k?: number }),
        ...(req.json
          ? {
              response_format:
                req.json.mode === "json_object" ? { type: "json_object" as const } : { type: "json_schema" as const, json_schema: { name: "answer", schema: req.json.schema, strict: true } },
            }
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
      let firstChunkAt = 0;
      let finishReason: string | null = null;
      let usage: OpenAI.CompletionUsage | undefined;
      let requestId: string | null = null;
      try {
        const stream = await client.chat.completions.create(body, { signal });
        for await (const chunk of stream) {
          requestId ??= chunk.id ?? null;
          firstChunkAt ||= Date.now();
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices?.[0];
          if (!choice) continue;
          const delta = (choice.delta ?? {}) as QwenDelta;
          const r = typeof delta.reasoning_content === "string" ? delta.reasoning_content : "";
          const a = typeof delta.content === "string" ? delta.content : "";
          if (r) reasoning.push(r);
          if (a) answer.push(a);
          // A tool call streams as pieces: the first names it (index, id, name), later ones append arguments.
          for (const t of delta.tool_calls ?? []) {
            const at = t.index ?? 0;
            const call = (toolCalls[at] ??= { id: "", name: "", arguments: "" });
            if (t.id) call.id = t.id;
            if (t.function?.name) call.name += t.function.name;
            if (t.function?.arguments) call.arguments += t.function.arguments;
          }
          if (choice.finish_reason) finishReason = choice.finish_reason;
          onChunk?.({ requestId, reasoning: r, answer: a, finishReason, firstChunkAt });
        }
      } catch (e) {
        const err = classifyModelError(e, { model: req.model, catalog: o.catalog });
        // The stream's id names the request for a support ticket even when the error body did not.
        if (err instanceof ModelError && !err.requestId && requestId) err.requestId = requestId;
        throw err;
      }
      // An abort ends `for await` quietly; an unfinished stream must not pass for a result.
      if (signal?.aborted) {
        throw new ModelError("deadline", "the model call was cut off before the stream finished", { retryable: true, requestId: requestId ?? undefined });
      }
      if (!usage) throw new ModelError("model_error", "the stream ended without its usage chunk (cut off?)", { retryable: true, requestId: requestId ?? undefined });
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

/**
 * The provider puts the request id in an error's body (`request_id`, docs/qwen-api.md §6) and the
 * SDK reads it only from the `x-request-id` header: copy it there, so every refused request can
 * be named in a support ticket.
 */
function keepRequestId(inner: typeof fetch): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    if (res.status < 400 || res.headers.has("x-request-id")) return res;
    const text = await res.text();
    const id = /"request_id"\s*:\s*"([^"]+)"/.exec(text)?.[1];
    const headers = new Headers(res.headers);
    if (id) headers.set("x-request-id", id);
    return new Response(text, { status: res.status, statusText: res.statusText, headers });
  };
}
