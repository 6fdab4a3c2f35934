/**
 * Parses and validates a chat request the way the reference (§3, §9, §10) says Model Studio
 * does. Checks run in this order (the real order is unknown [A]): model (404), messages,
 * sampling parameters, thinking vs streaming, thinking_budget, max_tokens,
 * max_completion_tokens, response_format, then the input length (needs the token count).
 */
import type { Catalog, ModelInfo } from "../model/catalog.ts";
import { countChatTokens } from "../tokens/index.ts";
import type { SimMessage } from "./cache.ts";
import { invalidParameter, modelNotFound, type ProviderError } from "./errors.ts";

export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: Record<string, unknown> | boolean };

export interface SimRequest {
  model: ModelInfo;
  /** The model name as sent (echoed in responses). */
  modelName: string;
  stream: boolean;
  includeUsage: boolean;
  /** enable_thinking === true on a hybrid model (ignored on non-thinking models). */
  thinking: boolean;
  thinkingBudget: number;
  /** The model's answer cap (its max output; lower in thinking mode). */
  maxAnswerTokens: number;
  /** The cap on reasoning + answer: `max_completion_tokens`, or a lone legacy `max_tokens`. */
  maxCompletionTokens?: number;
  /** The output cap fields as the request sent them (null when absent). */
  sent: { maxTokens: number | null; maxCompletionTokens: number | null };
  stop: string[];
  format: ResponseFormat;
  messages: SimMessage[];
  promptTokens: number;
  /** Partial mode (docs/qwen-api.md §3): the text of a last assistant message sent with `partial: true`, which the answer continues. */
  partialPrefix: string | null;
  /** Prompt tokens without that partial message (what the answer it continues was asked with). */
  promptTokensBeforePartial: number;
  /** Function names offered in `tools` (empty when none). */
  tools: string[];
  /** `auto` unless the request says `none` or names a function. */
  toolChoice: "auto" | "none" | { name: string };
  seed: number | null;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const given = (v: unknown) => v !== undefined && v !== null;

/** A message's text parts; non-text parts (images, audio) are ignored. */
function normalizeMessage(m: unknown): SimMessage | null {
  if (!isObj(m) || typeof m.role !== "string") return null;
  const c = m.content;
  // An assistant's tool calls are part of what the model reads (and of the prompt's tokens).
  const toolCalls = m.role === "assistant" && Array.isArray(m.tool_calls) ? (m.tool_calls as unknown[]) : [];
  if (toolCalls.length) return { role: m.role, text: (typeof c === "string" ? c : "") + JSON.stringify(toolCalls), parts: null, toolCalls: toolCalls.length };
  if (c === undefined || c === null) return { role: m.role, text: "", parts: null };
  if (typeof c === "string") return { role: m.role, text: c, parts: null };
  if (!Array.isArray(c)) return null;
  const parts: { text: string; cached: boolean }[] = [];
  for (const p of c) {
    if (typeof p === "string") parts.push({ text: p, cached: false });
    else if (isObj(p) && typeof p.text === "string") parts.push({ text: p.text, cached: isObj(p.cache_control) && p.cache_control.type === "ephemeral" });
  }
  return { role: m.role, text: parts.map((p) => p.text).join(""), parts };
}

/** The model named by the body, or the error to send. Cheap: used before token counting. */
export function resolveModel(body: Record<string, unknown>, catalog: Catalog): ModelInfo | ProviderError {
  if (typeof body.model !== "string" || !body.model) return invalidParameter("The model parameter is required.");
  const m = Object.hasOwn(catalog.models, body.model) ? catalog.models[body.model] : undefined;
  return m ?? modelNotFound(body.model);
}

/** The request, or the error to send (with the prompt's token count when it was counted). */
export function parseRequest(body: unknown, catalog: Catalog): SimRequest | (ProviderError & { promptTokens?: number }) {
  if (!isObj(body)) return invalidParameter("The request body must be a JSON object.");
  const model = resolveModel(body, catalog);
  if ("code" in model) return model;
  const modelName = body.model as string;

  if (!Array.isArray(body.messages) || body.messages.length === 0) return invalidParameter("messages must be a non-empty array of {role, content}.");
  const messages: SimMessage[] = [];
  for (const raw of body.messages) {
    const m = normalizeMessage(raw);
    if (!m) return invalidParameter("Each message needs a string role and a string, array or null content.");
    messages.push(m);
  }

  // A tool result answers the tool calls of the assistant message before it [V D2, D3].
  for (const [i, m] of messages.entries()) {
    if (m.role !== "tool") continue;
    const before = messages.slice(0, i).findLast((x) => x.role !== "tool");
    if (!before || before.role !== "assistant" || !before.toolCalls) {
      return invalidParameter(`messages with role "tool" must be a response to a preceeding message with "tool_calls".`);
    }
  }

  const t = body.temperature;
  if (given(t) && !(typeof t === "number" && t >= 0 && t < 2)) return invalidParameter("Temperature should be in [0.0, 2.0)");
  const p = body.top_p;
  if (given(p) && !(typeof p === "number" && p > 0 && p <= 1)) return invalidParameter("Range of top_p should be (0.0, 1.0]", { algo: true });
  const pp = body.presence_penalty;
  if (given(pp) && !(typeof pp === "number" && pp >= -2 && pp <= 2)) return invalidParameter("Range of presence_penalty should be [-2.0, 2.0]", { algo: true });
  const k = body.top_k;
  if (given(k) && !(isInt(k) && k >= 0)) return invalidParameter("Range of top_k should be [0, +inf)", { algo: true });
  const seed = body.seed;
  if (given(seed)) {
    if (!isInt(seed)) return invalidParameter(`${JSON.stringify(seed)} is not of type 'integer' - 'seed'`);
    if (seed < 0) return invalidParameter(`${seed} is lesser than the minimum of 0 - 'seed'`);
    if (seed > 2 ** 31 - 1) return invalidParameter(`${seed} is greater than the maximum of 2147483647 - 'seed'`);
  }

  const stream = body.stream === true;
  const includeUsage = stream ? isObj(body.stream_options) && body.stream_options.include_usage === true : true;
  const thinking = body.enable_thinking === true && model.thinking === "hybrid";
  if (thinking && !stream) return invalidParameter("parameter.enable_thinking must be set to false for non-streaming calls");

  let thinkingBudget = model.maxThinkingBudget;
  if (thinking && given(body.thinking_budget)) {
    const b = body.thinking_budget;
    if (!(isInt(b) && b >= 1 && b <= model.maxThinkingBudget)) {
      return invalidParameter(`The thinking_budget parameter must be a positive integer and not greater than ${model.maxThinkingBudget}`);
    }
    thinkingBudget = b;
  }

  // Output caps (docs/qwen-api.md §3). Since 2026-04-20 `max_completion_tokens` caps reasoning plus
  // answer together [V D9]; what `max_tokens` does past its deprecation is unknown [A]. The simulator
  // takes the harsher reading: a lone `max_tokens` is the same total cap (so a thinking call that
  // still sends it spends its cap on reasoning, visibly), and both together are refused.
  const answerCap = thinking ? model.maxOutputTokensThinking : model.maxOutputTokens;
  const maxAnswerTokens = answerCap;
  let maxCompletionTokens: number | undefined;
  if (given(body.max_tokens) && given(body.max_completion_tokens)) {
    return invalidParameter("Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported. Use 'max_completion_tokens'.");
  }
  if (given(body.max_tokens)) {
    const mt = body.max_tokens;
    if (!(isInt(mt) && mt >= 1 && mt <= answerCap)) return invalidParameter(`Range of max_tokens should be [1, ${answerCap}]`, { algo: true });
    maxCompletionTokens = mt;
  }
  if (given(body.max_completion_tokens)) {
    const cap = answerCap + (thinking ? model.maxThinkingBudget : 0);
    const mct = body.max_completion_tokens;
    if (!(isInt(mct) && mct >= 1 && mct <= cap)) return invalidParameter(`Range of max_completion_tokens should be [1, ${cap}]`, { algo: true });
    maxCompletionTokens = mct;
  }

  let format: ResponseFormat = { type: "text" };
  const rf = body.response_format;
  if (given(rf)) {
    if (!isObj(rf) || !["text", "json_object", "json_schema"].includes(rf.type as string)) {
      return invalidParameter("response_format.type must be one of 'text', 'json_object', 'json_schema'.");
    }
    if (rf.type !== "text" && thinking) return invalidParameter("Json mode response is not supported when enable_thinking is true");
    if (rf.type === "json_object") {
      if (!messages.some((m) => /json/i.test(m.text))) {
        return invalidParameter("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.");
      }
      format = { type: "json_object" };
    } else if (rf.type === "json_schema") {
      const js = rf.json_schema;
      if (!isObj(js) || !(isObj(js.schema) || typeof js.schema === "boolean")) return invalidParameter("response_format.json_schema.schema is required.");
      format = { type: "json_schema", schema: js.schema as Record<string, unknown> | boolean };
    }
  }

  const rawLast = body.messages.at(-1) as Record<string, unknown>;
  const partial = isObj(rawLast) && rawLast.partial === true;
  if (partial && rawLast.role !== "assistant") return invalidParameter("partial is only allowed on a last message whose role is assistant.");
  // The real message is not known [A]; the rule (non-thinking only) is [V D7].
  if (partial && thinking) return invalidParameter("Partial mode is not supported when enable_thinking is true.");
  // Tools: OpenAI's format; tool_choice naming a function is refused in thinking mode; `n` is 1-4 and 1 with tools;
  // no tool may be called `search` [V D2, D3]. The messages below are the simulator's wording [A].
  const tools: string[] = [];
  if (given(body.tools)) {
    if (!Array.isArray(body.tools)) return invalidParameter("tools must be an array of {type: \"function\", function: {name, parameters}}.");
    for (const t of body.tools) {
      const name = isObj(t) && t.type === "function" && isObj(t.function) && typeof t.function.name === "string" ? t.function.name : null;
      if (!name) return invalidParameter("tools must be an array of {type: \"function\", function: {name, parameters}}.");
      if (name === "search") return invalidParameter("The tool name cannot be search.");
      tools.push(name);
    }
  }
  let toolChoice: SimRequest["toolChoice"] = "auto";
  const tc = body.tool_choice;
  if (given(tc)) {
    if (tc === "auto" || tc === "none") toolChoice = tc;
    else if (isObj(tc) && tc.type === "function" && isObj(tc.function) && typeof tc.function.name === "string") {
      if (thinking) return invalidParameter("tool_choice does not support specifying a function in thinking mode; use \"auto\" or \"none\".");
      if (!tools.includes(tc.function.name)) return invalidParameter(`tool_choice names the function '${tc.function.name}', which is not in tools.`);
      toolChoice = { name: tc.function.name };
    } else return invalidParameter("tool_choice must be \"auto\", \"none\" or {type: \"function\", function: {name}}.");
  }
  const n = body.n;
  if (given(n)) {
    if (!(isInt(n) && n >= 1 && n <= 4)) return invalidParameter("Range of n should be [1, 4]", { algo: true });
    if (n > 1 && tools.length) return invalidParameter("n must be 1 when tools are given.", { algo: true });
  }

  const stop = typeof body.stop === "string" ? [body.stop] : Array.isArray(body.stop) ? body.stop.filter((s): s is string => typeof s === "string") : [];

  const promptTokens = countChatTokens(messages.map((m) => ({ role: m.role, content: m.text })));
  if (promptTokens > model.maxInputTokens) {
    return { ...invalidParameter(`Range of input length should be [1, ${model.maxInputTokens}]`, { algo: true }), promptTokens };
  }

  const partialPrefix = partial ? messages.at(-1)!.text : null;
  const promptTokensBeforePartial = partial ? countChatTokens(messages.slice(0, -1).map((m) => ({ role: m.role, content: m.text }))) : promptTokens;
  return {
    model,
    modelName,
    stream,
    includeUsage,
    thinking,
    thinkingBudget,
    maxAnswerTokens,
    maxCompletionTokens,
    sent: { maxTokens: isInt(body.max_tokens) ? body.max_tokens : null, maxCompletionTokens: isInt(body.max_completion_tokens) ? body.max_completion_tokens : null },
    stop,
    format,
    messages,
    promptTokens,
    partialPrefix,
    promptTokensBeforePartial,
    tools,
    toolChoice,
    seed: isInt(seed) ? seed : null,
  };
}
