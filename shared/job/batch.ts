import path from "node:path";
import { open } from "node:fs/promises";
import { LongdocError } from "../errors.ts";
import { checkFits } from "../model/budget.ts";
import type { ModelInfo } from "../model/catalog.ts";
import { messageText, type ChatMessage } from "../model/prompt.ts";
import type { CallPlan } from "../model/plan.ts";
import type { SamplingFields } from "../model/client.ts";
import { countChatTokens } from "../tokens/index.ts";
import { JobFileError, type JobProblem } from "./load.ts";
import type { JobSpec } from "./schema.ts";

// OpenAI Batch input files (`.jsonl`, one request a line: `{custom_id, method, url, body}`) taken
// in as a job: each line is one item whose id is its custom_id and whose prompt is the line's own
// messages. The body is stored as runs/<jobId>/requests/<itemId>.json and the worker sends it.

/** One line's request, as the worker sends it. */
export interface BatchRequest {
  /** 1-based line in the input file, for messages. */
  line: number;
  customId: string;
  model: string;
  messages: ChatMessage[];
  /** `max_tokens` or `max_completion_tokens` when the line sets one. */
  maxTokens?: number;
  /** Model Studio's `enable_thinking` and `thinking_budget`, when the line sets them. */
  enableThinking?: boolean;
  thinkingBudget?: number;
  /** The line's sampling and format fields, sent as written. */
  sampling?: SamplingFields;
  seed?: number;
  /** Why the line is not sent: a body field Model Studio cannot honour. Its item fails with this; the other lines run. */
  refused?: { field: string; message: string };
}

export interface BatchFile {
  file: string;
  requests: BatchRequest[];
  /** The job every line runs under: its model, thinking and defaults (see `batchJobSpec`). */
  spec: JobSpec;
}

/** OpenAI's own ceiling on a batch input file; past it a file is refused before it is read. */
export const MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024;
/** OpenAI's ceiling on requests in one batch. */
export const MAX_BATCH_REQUESTS = 50_000;
export const BATCH_URL = "/v1/chat/completions";
/** Problems reported before the rest of a bad file is left unread. */
const MAX_PROBLEMS = 50;

/**
 * An item id names a folder in S3 and in out/: letters, digits, '.', '-' and '_', starting with
 * a letter or digit, without '..', at most 128 characters.
 */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Names Windows keeps for devices, whatever their case or extension: a folder cannot take them. */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i;

/** Why `id` cannot name a folder on Windows (a device name, a trailing dot), or null when it can. */
export function windowsNameProblem(id: string): string | null {
  const base = id.split(".")[0]!;
  if (WINDOWS_DEVICE.test(base)) return `${JSON.stringify(id)} cannot be an item id: '${base.toUpperCase()}' is a Windows device name, so out/ could not hold its folder there; rename it (say ${JSON.stringify(`item-${id}`)})`;
  if (id.endsWith(".")) return `${JSON.stringify(id)} cannot be an item id: Windows drops a trailing '.', so its folder would clash with ${JSON.stringify(id.replace(/\.+$/, ""))}`;
  return null;
}

/** Body fields that shape the request as a whole: checked here, and a bad one refuses the file. */
const BODY_FIELDS = ["model", "messages", "max_tokens", "max_completion_tokens", "enable_thinking", "thinking_budget", "stream", "stream_options"];
/** Fields sent as written once their value is in Model Studio's range (reference §3). */
const SAMPLING_FIELDS = ["temperature", "top_p", "top_k", "presence_penalty", "stop", "seed", "response_format"];
/** Fields that change nothing about the answer: OpenAI's bookkeeping, accepted and not sent. */
const IGNORED_FIELDS = ["user", "metadata", "store", "service_tier"];
/** A field's value that asks for nothing: OpenAI's default, accepted and not sent. */
const NO_OP: Record<string, unknown> = { n: 1, logprobs: false, frequency_penalty: 0, parallel_tool_calls: false };
/** Fields Model Studio cannot honour for a line, and why: the line fails, the other lines run. */
const REFUSED: Record<string, string> = {
  n: "longdoc gives one answer per line (Model Studio documents n > 1 only for qwen-plus and non-thinking Qwen3); write one line per answer",
  logprobs: "longdoc does not return log probabilities",
  top_logprobs: "longdoc does not return log probabilities",
  frequency_penalty: "Model Studio does not document frequency_penalty; use presence_penalty",
  logit_bias: "Model Studio has no logit_bias",
  tools: "batch lines cannot offer tools (a job file's `tools: [code]` gives the model a code tool)",
  tool_choice: "batch lines cannot offer tools",
  functions: "batch lines cannot offer functions",
  function_call: "batch lines cannot offer functions",
  parallel_tool_calls: "batch lines cannot offer tools",
  reasoning_effort: "Model Studio's thinking is set with enable_thinking and thinking_budget",
  modalities: "longdoc answers in text only",
  audio: "longdoc answers in text only",
  prediction: "Model Studio has no predicted outputs",
  web_search_options: "longdoc does not turn on web search",
};
const LINE_FIELDS = ["custom_id", "method", "url", "body"];
const ROLES = new Set(["system", "user", "assistant"]);

type Json = Record<string, unknown>;
const isRecord = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Whether a file is meant as an OpenAI Batch input file: its first non-blank line is a JSON object
 * with `custom_id` and one of `method`, `url` or `body`, or the file is named `.jsonl` and its first
 * line is not JSON at all (then the line's problem is reported, not a YAML parser's).
 */
export function looksLikeBatchInput(head: string, file: string): boolean {
  const first = head.split("\n").find((l) => l.trim() !== "")?.trim();
  if (first === undefined) return false;
  let value: unknown;
  try {
    value = JSON.parse(first);
  } catch {
    // A broken line in a .jsonl, or a first request longer than the head that was read.
    return first.startsWith("{") && (path.extname(file).toLowerCase() === ".jsonl" || /^\{\s*"custom_id"\s*:/.test(first));
  }
  return isRecord(value) && "custom_id" in value && ("method" in value || "url" in value || "body" in value);
}

/** The first bytes of a file, enough for `looksLikeBatchInput`. */
export async function readHead(file: string, bytes = 64 * 1024): Promise<string> {
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * Parses a batch input file's text. Every problem is reported as `file:line: field: message`
 * (all of them, not only the first): a malformed line, a url other than /v1/chat/completions, a
 * model other than the first line's, a duplicate or unsafe custom_id, an unsupported body field.
 */
export function parseBatchText(text: string, file: string): BatchFile {
  const problems: JobProblem[] = [];
  const problem = (line: number, field: string, message: string) => problems.push({ file, line, field, message });
  const requests: BatchRequest[] = [];
  const seen = new Map<string, number>();
  const seenFolded = new Map<string, { line: number; id: string }>();
  let model: { name: string; line: number } | undefined;
  let thinking: { enabled: boolean; line: number } | undefined;

  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    if (raw.trim() === "") continue;
    if (problems.length >= MAX_PROBLEMS) break;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      problem(line, "(line)", `not a JSON object (${(e as Error).message}); each line of an OpenAI Batch file is one request`);
      continue;
    }
    if (!isRecord(value)) {
      problem(line, "(line)", "not a JSON object; each line of an OpenAI Batch file is one request {custom_id, method, url, body}");
      continue;
    }
    const before = problems.length;
    for (const key of Object.keys(value)) if (!LINE_FIELDS.includes(key)) problem(line, key, `unknown field; a request line has ${LINE_FIELDS.join(", ")}`);
    const id = value.custom_id;
    if (typeof id !== "string" || id === "") {
      problem(line, "custom_id", id === undefined ? "is required" : "must be a non-empty string");
    } else if (!SAFE_ID.test(id) || id.includes("..")) {
      problem(line, "custom_id", `${JSON.stringify(id)} cannot be an item id: it names the item's folder in S3 and in out/, so use letters, digits, '.', '-' and '_' (starting with a letter or digit, no '..', at most 128 characters)`);
    } else if (windowsNameProblem(id)) {
      problem(line, "custom_id", windowsNameProblem(id)!);
    } else if (seen.has(id)) {
      problem(line, "custom_id", `duplicate custom_id ${JSON.stringify(id)} (first on line ${seen.get(id)})`);
    } else if (seenFolded.has(id.toLowerCase())) {
      const first = seenFolded.get(id.toLowerCase())!;
      problem(line, "custom_id", `duplicate custom_id ${JSON.stringify(id)}: line ${first.line} has ${JSON.stringify(first.id)}, and ids that differ only in case share a folder on case-insensitive disks`);
    } else {
      seen.set(id, line);
      seenFolded.set(id.toLowerCase(), { line, id });
    }
    if (value.method !== undefined && value.method !== "POST") problem(line, "method", `must be "POST", got ${JSON.stringify(value.method)}`);
    if (value.url !== BATCH_URL) problem(line, "url", `${value.url === undefined ? "is required" : `${JSON.stringify(value.url)} is not supported`}: longdoc runs chat completions only (url "${BATCH_URL}")`);
    const body = value.body;
    if (!isRecord(body)) {
      problem(line, "body", body === undefined ? "is required" : "must be a JSON object (the chat completions request)");
      continue;
    }
    const { sampling, seed, refused } = lineParams(body, messageWords(body.messages));
    if (body.stream === true) problem(line, "body.stream", "longdoc always streams the call itself; leave stream out");
    if (typeof body.model !== "string" || body.model === "") {
      problem(line, "body.model", body.model === undefined ? "is required" : "must be a model name");
    } else if (model && body.model !== model.name) {
      problem(line, "body.model", `mixed models: ${JSON.stringify(body.model)} here, ${JSON.stringify(model.name)} on line ${model.line}; one batch file runs one model`);
    } else model ??= { name: body.model, line };
    const messages = parseMessages(body.messages, (field, message) => problem(line, `body.messages${field}`, message));
    const maxTokens = body.max_completion_tokens ?? body.max_tokens;
    const maxField = body.max_completion_tokens !== undefined ? "body.max_completion_tokens" : "body.max_tokens";
    if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || (maxTokens as number) < 1 || (maxTokens as number) > 65_536)) {
      problem(line, maxField, "must be a whole number from 1 to 65536");
    }
    if (body.enable_thinking !== undefined && typeof body.enable_thinking !== "boolean") problem(line, "body.enable_thinking", "must be true or false");
    const enabled = body.enable_thinking === true;
    if (thinking && enabled !== thinking.enabled) {
      problem(line, "body.enable_thinking", `mixed thinking: ${enabled} here, ${thinking.enabled} on line ${thinking.line}; one batch file runs with thinking on or off throughout`);
    } else thinking ??= { enabled, line };
    const budget = body.thinking_budget;
    if (budget !== undefined && (!Number.isInteger(budget) || (budget as number) < 1 || (budget as number) > 81_920)) {
      problem(line, "body.thinking_budget", "must be a whole number from 1 to 81920");
    }
    if (problems.length > before || messages === null) continue;
    requests.push({
      line,
      customId: id as string,
      model: body.model as string,
      messages,
      ...(maxTokens !== undefined && { maxTokens: maxTokens as number }),
      ...(body.enable_thinking !== undefined && { enableThinking: body.enable_thinking as boolean }),
      ...(budget !== undefined && { thinkingBudget: budget as number }),
      ...(Object.keys(sampling).length > 0 && { sampling }),
      ...(seed !== undefined && { seed }),
      ...(refused && { refused }),
    });
  }
  if (problems.length === 0 && requests.length === 0) problem(1, "(file)", "the OpenAI Batch file has no request lines");
  if (requests.length > MAX_BATCH_REQUESTS) problem(1, "(file)", `${requests.length} requests; a batch holds at most ${MAX_BATCH_REQUESTS}`);
  if (problems.length > 0) throw new JobFileError(problems);
  return { file, requests, spec: batchJobSpec(file, model!.name, thinking!.enabled) };
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Whether the messages mention JSON: Model Studio refuses `json_object` output otherwise. */
function messageWords(messages: unknown): boolean {
  return /json/i.test(JSON.stringify(messages ?? ""));
}

/**
 * A line's other body fields: the sampling and format fields Model Studio takes, each checked
 * against its range; bookkeeping and default values accepted and not sent; and the first field it
 * cannot honour, which refuses this line alone (named with the reason) while the others run.
 */
function lineParams(body: Json, mentionsJson: boolean): { sampling: SamplingFields; seed?: number; refused?: { field: string; message: string } } {
  const sampling: SamplingFields = {};
  let seed: number | undefined;
  let refused: { field: string; message: string } | undefined;
  const refuse = (key: string, message: string) => void (refused ??= { field: `body.${key}`, message });
  for (const [key, v] of Object.entries(body)) {
    if (BODY_FIELDS.includes(key) || IGNORED_FIELDS.includes(key)) continue;
    if (key in NO_OP && NO_OP[key] === v) continue;
    if (key in REFUSED) {
      refuse(key, `${JSON.stringify(v)}: ${REFUSED[key]}`);
      continue;
    }
    if (!SAMPLING_FIELDS.includes(key)) {
      refuse(key, `not a chat completions field longdoc knows; it is not dropped silently, since that would change the request`);
      continue;
    }
    if (v === null) continue;
    if (key === "temperature") isNumber(v) && v >= 0 && v < 2 ? (sampling.temperature = v) : refuse(key, `must be a number from 0 to below 2 on Model Studio, got ${JSON.stringify(v)}`);
    else if (key === "top_p") isNumber(v) && v > 0 && v <= 1 ? (sampling.top_p = v) : refuse(key, `must be a number above 0 and at most 1, got ${JSON.stringify(v)}`);
    else if (key === "top_k") Number.isInteger(v) && (v as number) >= 0 ? (sampling.top_k = v as number) : refuse(key, `must be a whole number, 0 or more, got ${JSON.stringify(v)}`);
    else if (key === "presence_penalty") isNumber(v) && v >= -2 && v <= 2 ? (sampling.presence_penalty = v) : refuse(key, `must be a number from -2 to 2, got ${JSON.stringify(v)}`);
    else if (key === "seed") Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 2 ** 31 - 1 ? (seed = v as number) : refuse(key, `must be a whole number from 0 to 2147483647 on Model Studio, got ${JSON.stringify(v)}`);
    else if (key === "stop") {
      const ok = typeof v === "string" || (Array.isArray(v) && v.length >= 1 && v.length <= 4 && v.every((x) => typeof x === "string"));
      ok ? (sampling.stop = v as string | string[]) : refuse(key, `must be a string or a list of up to 4 strings, got ${JSON.stringify(v)}`);
    } else if (key === "response_format") {
      const type = isRecord(v) ? v.type : undefined;
      if (type === "text") continue;
      if (type === "json_object") {
        mentionsJson ? (sampling.response_format = { type }) : refuse(key, `json_object needs the word "json" in a message (Model Studio answers 400 without it)`);
      } else if (type === "json_schema" && isRecord(v) && isRecord(v.json_schema) && (isRecord(v.json_schema.schema) || typeof v.json_schema.schema === "boolean")) {
        sampling.response_format = { type, json_schema: { name: "answer", ...v.json_schema } };
      } else refuse(key, `must be {type: "text"}, {type: "json_object"} or {type: "json_schema", json_schema: {name, schema}}, got ${JSON.stringify(v)}`);
    }
  }
  return { sampling, ...(seed !== undefined && { seed }), ...(refused && { refused }) };
}

/** Checks `messages` and returns them as longdoc sends them; null (with problems reported) when they are not usable. */
function parseMessages(value: unknown, problem: (field: string, message: string) => void): ChatMessage[] | null {
  if (!Array.isArray(value) || value.length === 0) {
    problem("", value === undefined ? "is required" : "must be a non-empty list of {role, content}");
    return null;
  }
  const out: ChatMessage[] = [];
  let ok = true;
  value.forEach((m: unknown, i) => {
    const at = `[${i}]`;
    if (!isRecord(m)) return (ok = false), problem(at, "must be an object {role, content}");
    for (const key of Object.keys(m)) if (key !== "role" && key !== "content") (ok = false), problem(`${at}.${key}`, "not supported (a message has role and content)");
    if (typeof m.role !== "string" || !ROLES.has(m.role)) return (ok = false), problem(`${at}.role`, `must be one of system, user, assistant, got ${JSON.stringify(m.role)}`);
    const text = contentText(m.content, (field, message) => problem(`${at}.content${field}`, message));
    if (text === null) return (ok = false);
    out.push({ role: m.role as ChatMessage["role"], content: text });
  });
  if (ok && out.at(-1)?.role === "assistant") (ok = false), problem(`[${out.length - 1}].role`, "the last message must not be the assistant's: there is nothing to answer");
  return ok ? out : null;
}

/** A message's text: a string, or text parts joined (image and audio parts are refused). */
function contentText(content: unknown, problem: (field: string, message: string) => void): string | null {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) {
    problem("", content === undefined ? "is required" : "must be a string or a list of text parts");
    return null;
  }
  const texts: string[] = [];
  for (const [i, part] of content.entries()) {
    if (!isRecord(part) || part.type !== "text" || typeof part.text !== "string") {
      problem(`[${i}]`, `only text parts are supported ({type: "text", text}), got ${isRecord(part) ? `type ${JSON.stringify(part.type)}` : typeof part}`);
      return null;
    }
    texts.push(part.text);
  }
  return texts.join("");
}

/**
 * The job a batch file runs as: named after the file (`requests.jsonl` → `requests`), the lines'
 * model and thinking, no documents (each line brings its own messages), per-item calls, text
 * output, and the catalog's quota. Limits are the defaults; a line's max_tokens is its answer cap.
 */
export function batchJobSpec(file: string, model: string, thinking: boolean): JobSpec {
  const base = path.basename(file).replace(/\.[^.]*$/, "");
  const name = base.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 48) || "batch";
  return {
    name,
    description: `OpenAI Batch input file ${path.basename(file)}`,
    documents: [],
    prompt: "(each item's own messages, from the batch file)",
    model,
    thinking: { enabled: thinking },
    maxOutputTokens: 4096,
    output: { format: "text" },
    packing: "per-document",
    truncate: "none",
    calls: "per-item",
    cache: "implicit",
    // One call per line, as the file asks: no samples or tools (a line's own `tools` are refused).
    samples: 1,
    citations: "off",
    mode: "realtime",
    batch: { fallback: "realtime" },
    limits: {},
  };
}

/**
 * The call for one batch line: its messages as written, its answer cap (max_tokens, else the
 * job's default) and thinking budget, checked to fit the model as document calls are. No
 * truncation: a line that does not fit fails `input_too_long` with the numbers.
 */
export function planBatchCall(
  request: Pick<BatchRequest, "messages" | "maxTokens" | "thinkingBudget" | "sampling" | "seed" | "refused">,
  model: ModelInfo,
  spec: Pick<JobSpec, "thinking" | "maxOutputTokens">,
): CallPlan {
  const thinking = spec.thinking.enabled;
  // A refused line fails as the provider's 400 would, without being sent.
  if (request.refused) throw new LongdocError("model_bad_request", `${request.refused.field}: ${request.refused.message}; this line was not sent (the other lines run)`);
  if (thinking && request.sampling?.response_format) {
    throw new LongdocError("model_bad_request", `body.response_format: ${request.sampling.response_format.type} output does not work with thinking on Model Studio (set enable_thinking: false on every line); this line was not sent`);
  }
  if (thinking && model.thinking === "none") throw new LongdocError("job_invalid", `${model.id} has no thinking mode; set enable_thinking: false or choose a hybrid model`);
  const maxOutputTokens = Math.min(request.maxTokens ?? spec.maxOutputTokens, thinking ? model.maxOutputTokensThinking : model.maxOutputTokens);
  const explicitThinking = thinking && request.thinkingBudget !== undefined ? Math.min(request.thinkingBudget, model.maxThinkingBudget) : undefined;
  const inputTokens = countChatTokens(request.messages.map((m) => ({ role: m.role, content: messageText(m) })));
  checkFits(model, inputTokens, { maxOutputTokens, thinkingBudget: explicitThinking });
  const thinkingBudget = !thinking ? undefined : (explicitThinking ?? Math.max(1, Math.min(model.maxThinkingBudget, model.contextTokens - inputTokens - maxOutputTokens)));
  const extras = { ...(request.sampling && { sampling: request.sampling }), ...(request.seed !== undefined && { seed: request.seed }) };
  return { messages: request.messages, inputTokens, maxOutputTokens, thinkingBudget, truncated: null, prefixTokens: 0, explicitCache: false, ...(Object.keys(extras).length > 0 && { extras }) };
}

/** The request a batch item sends, read from the run (through any JSON reader: the run store fits); a missing one fails the item naming its key. */
export async function readBatchRequest(store: { getJson<T>(key: string): Promise<T | undefined> }, uri: string): Promise<BatchRequest> {
  const key = uri.replace(/^s3:\/\/[^/]+\//, "");
  const request = await store.getJson<BatchRequest>(key);
  if (!request) throw new LongdocError("document_missing", `the item's request is missing at ${uri}`);
  return request;
}
