/**
 * The simulator's Files and Batch APIs (docs/qwen-api.md §8): upload a JSONL input file (purpose
 * `batch`), create a batch over it, read, list and cancel batches, download output and error
 * files. A batch moves `validating → in_progress → finalizing → completed` over a configurable
 * processing time (a failed validation ends `failed`; `outcome` can make batches `expired` or
 * `failed`; a cancel goes `cancelling → cancelled`). Its state is worked out from the clock when
 * asked, so nothing runs in the background. Each line is answered by the same generator as a chat
 * call; the simulator's faults apply to lines too, and a faulted line lands in the error file.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Catalog } from "../model/catalog.ts";
import { answerRequest } from "./content.ts";
import { errorBody, modelNotFound, providerErrors, type ProviderError } from "./errors.ts";
import type { FaultKind, FaultPlan } from "./faults.ts";
import { findDocuments, proveDocument, withoutDocuments } from "./proof.ts";
import { parseRequest } from "./request.ts";

export interface BatchSimOptions {
  /** From create to the final state (default 3 000 ms): a third validating, a third in progress, a third finalizing. */
  processingMs?: number;
  /** How batches end after their processing time (default `completed`). */
  outcome?: "completed" | "expired" | "failed";
  /** Per input file (the provider's limit is 50,000). */
  maxLines?: number;
}

type State = "validating" | "in_progress" | "finalizing" | "completed" | "failed" | "expired" | "cancelling" | "cancelled";

interface SimFile {
  id: string;
  filename: string;
  purpose: string;
  content: string;
  createdAt: number;
}

interface SimBatch {
  id: string;
  inputFileId: string;
  endpoint: string;
  metadata: Record<string, string> | null;
  createdAt: number;
  /** A validation failure found at create: the batch ends `failed` with it. */
  invalid: { code: string; message: string; line?: number } | null;
  outcome: "completed" | "expired" | "failed";
  processingMs: number;
  cancelAt: number | null;
  /** Set when the batch reached its final state. */
  final: { state: State; at: number; outputFileId: string | null; errorFileId: string | null; completed: number; failed: number } | null;
  lines: number;
}

export interface BatchService {
  /** Handles a Files or Batch API request; false when the path is not one of theirs. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
  /** Lines answered so far (none of them a chat completion request). */
  readonly answeredLines: number;
  /** Batches created so far (tests look at their states). */
  list(): { id: string; status: string; lines: number; endpoint: string }[];
  /** Changes the options for batches created from now on. */
  configure(options: BatchSimOptions): void;
}

const PREFIXES = ["/compatible-mode/v1", "/v1"];
const DRY_RUN = "/v1/chat/ds-test";
const ENDPOINTS = new Set(["/v1/chat/completions", DRY_RUN]);
const PRE_ANSWER: Partial<Record<FaultKind, ProviderError>> = {
  timeout: providerErrors.timeout,
  "503": providerErrors.unavailable,
  "429": providerErrors.limitRequests,
  burst: providerErrors.limitBurst,
  quota: providerErrors.quotaMinute,
  moderation: providerErrors.inputModeration,
  midstream: providerErrors.outputModeration,
  arrearage: providerErrors.arrearage,
};

export function createBatchService(o: { catalog: Catalog; faults: FaultPlan; options?: BatchSimOptions; now?: () => number }): BatchService {
  const now = o.now ?? Date.now;
  const options: BatchSimOptions = { ...o.options };
  const files = new Map<string, SimFile>();
  const batches = new Map<string, SimBatch>();
  let answeredLines = 0;

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, { "content-type": typeof body === "string" ? "application/jsonl" : "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
  const notFound = (res: ServerResponse, what: string) => send(res, 404, { error: { message: `${what} not found`, type: "invalid_request_error", param: null, code: "not_found" } });
  const invalid = (res: ServerResponse, message: string) => send(res, 400, { error: { message, type: "invalid_request_error", param: null, code: "invalid_parameter_error" } });

  const addFile = (filename: string, purpose: string, content: string): SimFile => {
    const f = { id: `file-batch-${randomUUID().replace(/-/g, "").slice(0, 24)}`, filename, purpose, content, createdAt: now() };
    files.set(f.id, f);
    return f;
  };
  const fileObject = (f: SimFile) => ({ id: f.id, object: "file", bytes: Buffer.byteLength(f.content), created_at: Math.floor(f.createdAt / 1000), filename: f.filename, purpose: f.purpose, status: "processed" });

  /** The input file's checks the provider makes while `validating`. */
  function validate(content: string, maxLines: number): SimBatch["invalid"] {
    const lines = content.split("\n").filter((l) => l.trim());
    if (lines.length === 0) return { code: "empty_file", message: "The input file has no requests." };
    if (lines.length > maxLines) return { code: "too_many_requests", message: `The input file has ${lines.length} requests; at most ${maxLines} are allowed.` };
    const ids = new Set<string>();
    let model: string | null = null;
    for (const [i, text] of lines.entries()) {
      let line: { custom_id?: unknown; body?: { model?: unknown } };
      try {
        line = JSON.parse(text);
      } catch {
        return { code: "invalid_json_line", message: `Line ${i + 1} is not valid JSON.`, line: i + 1 };
      }
      if (typeof line.custom_id !== "string") return { code: "missing_custom_id", message: `Line ${i + 1} has no custom_id.`, line: i + 1 };
      if (ids.has(line.custom_id)) return { code: "duplicate_custom_id", message: `Line ${i + 1}: custom_id '${line.custom_id}' is used twice.`, line: i + 1 };
      ids.add(line.custom_id);
      const m = typeof line.body?.model === "string" ? line.body.model : null;
      if (model !== null && m !== model) return { code: "mismatched_model", message: `Line ${i + 1}: every request of a file must use the same model (${model}).`, line: i + 1 };
      model = m;
    }
    return null;
  }

  /** The batch's state now; reaching its end answers every line (once). */
  function stateOf(b: SimBatch): State {
    const t = now();
    if (b.final) return b.final.state;
    if (b.cancelAt !== null) {
      if (t - b.cancelAt < b.processingMs / 4) return "cancelling";
      return finish(b, "cancelled");
    }
    const elapsed = t - b.createdAt;
    if (elapsed < b.processingMs / 3) return "validating";
    if (b.invalid) return finish(b, "failed");
    if (elapsed < (2 * b.processingMs) / 3) return "in_progress";
    if (elapsed < b.processingMs) return "finalizing";
    return finish(b, b.outcome === "completed" ? "completed" : b.outcome);
  }

  function finish(b: SimBatch, state: State): State {
    const out: string[] = [];
    const errors: string[] = [];
    // Only a completed batch answers its lines; a failed, expired or cancelled one here answers none.
    if (state === "completed") {
      for (const text of files.get(b.inputFileId)!.content.split("\n").filter((l) => l.trim())) {
        const line = JSON.parse(text) as { custom_id: string; body: unknown };
        const answered = b.endpoint === DRY_RUN ? checkLine(line.custom_id, line.body) : answerLine(line.custom_id, line.body);
        (answered.ok ? out : errors).push(JSON.stringify(answered.line));
      }
    }
    const name = (kind: string) => `${b.id}_${kind}.jsonl`;
    b.final = {
      state,
      at: now(),
      outputFileId: out.length ? addFile(name("output"), "batch_output", out.join("\n") + "\n").id : null,
      errorFileId: errors.length ? addFile(name("error"), "batch_output", errors.join("\n") + "\n").id : null,
      completed: out.length,
      failed: errors.length,
    };
    return state;
  }

  /** The free dry run (`batch-test-model` on /v1/chat/ds-test): the line is checked, nothing is generated, no fault applies. */
  function checkLine(customId: string, body: unknown): { ok: boolean; line: Record<string, unknown> } {
    const requestId = randomUUID();
    const b = (body ?? {}) as { model?: unknown; messages?: unknown };
    const problem =
      b.model !== "batch-test-model" ? `the test endpoint takes model batch-test-model, not ${String(b.model)}` : !Array.isArray(b.messages) || b.messages.length === 0 ? "messages must be a non-empty array" : null;
    if (problem) {
      const e: ProviderError = { status: 400, code: "invalid_parameter_error", type: "invalid_request_error", message: problem };
      return { ok: false, line: { id: `batch_req_${requestId}`, custom_id: customId, response: { status_code: 400, request_id: requestId, body: errorBody(e, requestId) }, error: { code: e.code, message: e.message } } };
    }
    const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    const message = { role: "assistant", content: "This is a test result." };
    return { ok: true, line: { id: `batch_req_${requestId}`, custom_id: customId, response: { status_code: 200, request_id: requestId, body: { id: `chatcmpl-${requestId}`, object: "chat.completion", model: "batch-test-model", choices: [{ index: 0, message, finish_reason: "stop" }], usage } }, error: null } };
  }

  /** One line, answered as the chat endpoint would answer it unstreamed (thinking allowed, as batch allows it). */
  function answerLine(customId: string, body: unknown): { ok: boolean; line: Record<string, unknown> } {
    const requestId = randomUUID();
    const fail = (e: ProviderError) => ({
      ok: false,
      line: { id: `batch_req_${requestId}`, custom_id: customId, response: { status_code: e.status, request_id: requestId, body: errorBody(e, requestId) }, error: { code: e.code, message: e.message } },
    });
    const fault = o.faults.next();
    if (fault) {
      if (fault.kind === "404") return fail(modelNotFound(String((body as { model?: unknown })?.model ?? "unknown")));
      if (fault.kind !== "schema" && fault.kind !== "citations") return fail(PRE_ANSWER[fault.kind] ?? providerErrors.internal);
    }
    // Parsed as a streamed call, so that thinking is accepted as the Batch API accepts it.
    const parsed = parseRequest({ ...(body as object), stream: true, stream_options: { include_usage: true } }, o.catalog);
    if ("status" in parsed) return fail(parsed);
    const found = parsed.messages.flatMap((m) => findDocuments(m.text));
    const lastUser = parsed.messages.findLast((m) => m.role === "user");
    const out = answerRequest(parsed, found, fault, { documents: found.map(proveDocument), question: lastUser ? withoutDocuments(lastUser.text).trim() : "", toolResults: [] });
    answeredLines++;
    const completion = out.reasoningTokens + out.answerTokens;
    const message: Record<string, unknown> = { role: "assistant", content: out.answer };
    if (parsed.thinking) message.reasoning_content = out.reasoning;
    return {
      ok: true,
      line: {
        id: `batch_req_${requestId}`,
        custom_id: customId,
        response: {
          status_code: 200,
          request_id: requestId,
          body: {
            id: `chatcmpl-${requestId}`,
            object: "chat.completion",
            created: Math.floor(now() / 1000),
            model: parsed.modelName,
            system_fingerprint: null,
            choices: [{ index: 0, message, finish_reason: out.finishReason, logprobs: null }],
            usage: {
              prompt_tokens: parsed.promptTokens,
              completion_tokens: completion,
              total_tokens: parsed.promptTokens + completion,
              completion_tokens_details: { reasoning_tokens: out.reasoningTokens },
              prompt_tokens_details: { cached_tokens: 0 },
            },
          },
        },
        error: null,
      },
    };
  }

  function batchObject(b: SimBatch) {
    const status = stateOf(b);
    const s = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));
    const f = b.final;
    return {
      id: b.id,
      object: "batch",
      endpoint: b.endpoint,
      errors: b.invalid && status === "failed" ? { object: "list", data: [{ code: b.invalid.code, message: b.invalid.message, line: b.invalid.line ?? null, param: null }] } : null,
      input_file_id: b.inputFileId,
      completion_window: "24h",
      status,
      output_file_id: f?.outputFileId ?? null,
      error_file_id: f?.errorFileId ?? null,
      created_at: s(b.createdAt),
      in_progress_at: status === "validating" ? null : s(b.createdAt + b.processingMs / 3),
      expires_at: s(b.createdAt + 24 * 3600_000),
      finalizing_at: f && f.state === "completed" ? s(b.createdAt + (2 * b.processingMs) / 3) : null,
      completed_at: f?.state === "completed" ? s(f.at) : null,
      failed_at: f?.state === "failed" ? s(f.at) : null,
      expired_at: f?.state === "expired" ? s(f.at) : null,
      cancelling_at: s(b.cancelAt),
      cancelled_at: f?.state === "cancelled" ? s(f.at) : null,
      request_counts: { total: b.lines, completed: f?.completed ?? 0, failed: f ? (f.state === "completed" ? f.failed : b.lines - f.completed) : 0 },
      metadata: b.metadata,
    };
  }

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, fullPath: string): Promise<boolean> {
    const prefix = PREFIXES.find((p) => fullPath.startsWith(`${p}/files`) || fullPath.startsWith(`${p}/batches`));
    if (!prefix) return false;
    const path = fullPath.slice(prefix.length);
    const url = new URL(req.url ?? "/", "http://sim");
    const auth = req.headers.authorization;
    if (!auth || !/^Bearer\s+\S/.test(auth)) {
      req.resume();
      send(res, 401, errorBody(providerErrors.badKey, randomUUID()));
      return true;
    }
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "files") {
      if (req.method === "POST" && parts.length === 1) {
        const raw = await readBody(req);
        const form = await new Request("http://sim/files", { method: "POST", headers: { "content-type": req.headers["content-type"] ?? "" }, body: raw }).formData().catch(() => null);
        const file = form?.get("file");
        const purpose = form?.get("purpose");
        if (!form || typeof file === "string" || !file) return invalid(res, "Upload a file as multipart/form-data field 'file'."), true;
        if (purpose !== "batch") return invalid(res, "purpose must be 'batch'."), true;
        send(res, 200, fileObject(addFile(file.name || "input.jsonl", "batch", await file.text())));
        return true;
      }
      req.resume();
      const f = files.get(parts[1] ?? "");
      if (!f) return notFound(res, `File ${parts[1]}`), true;
      if (req.method === "GET" && parts[2] === "content") send(res, 200, f.content);
      else if (req.method === "GET" && parts.length === 2) send(res, 200, fileObject(f));
      else notFound(res, path);
      return true;
    }
    // batches
    if (req.method === "POST" && parts.length === 1) {
      let body: { input_file_id?: string; endpoint?: string; completion_window?: string; metadata?: Record<string, string> };
      try {
        body = JSON.parse((await readBody(req)).toString("utf8"));
      } catch {
        return invalid(res, "The request body is not valid JSON."), true;
      }
      const file = files.get(body.input_file_id ?? "");
      if (!file) return notFound(res, `File ${body.input_file_id}`), true;
      if (!ENDPOINTS.has(body.endpoint ?? "")) return invalid(res, `endpoint must be one of ${[...ENDPOINTS].join(", ")}.`), true;
      if (body.completion_window !== "24h") return invalid(res, "completion_window must be '24h'."), true;
      const b: SimBatch = {
        id: `batch_${randomUUID()}`,
        inputFileId: file.id,
        endpoint: body.endpoint!,
        metadata: body.metadata ?? null,
        createdAt: now(),
        // The dry run takes at most 100 lines, makes no inference (so it is quick) and always runs to its end.
        invalid: validate(file.content, body.endpoint === DRY_RUN ? 100 : (options.maxLines ?? 50_000)),
        outcome: body.endpoint === DRY_RUN ? "completed" : (options.outcome ?? "completed"),
        processingMs: (options.processingMs ?? 3_000) / (body.endpoint === DRY_RUN ? 10 : 1),
        cancelAt: null,
        final: null,
        lines: file.content.split("\n").filter((l) => l.trim()).length,
      };
      batches.set(b.id, b);
      send(res, 200, batchObject(b));
      return true;
    }
    req.resume();
    if (req.method === "GET" && parts.length === 1) {
      const q = url.searchParams;
      const inputIds = q.get("input_file_ids")?.split(",").filter(Boolean);
      const status = q.get("status");
      let list = [...batches.values()].filter((b) => (!inputIds || inputIds.includes(b.inputFileId)) && (!status || stateOf(b) === status)).reverse();
      const after = q.get("after");
      if (after) list = list.slice(list.findIndex((b) => b.id === after) + 1);
      const limit = Math.min(100, Number(q.get("limit") ?? 20) || 20);
      const page = list.slice(0, limit).map(batchObject);
      send(res, 200, { object: "list", data: page, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: list.length > limit });
      return true;
    }
    const b = batches.get(parts[1] ?? "");
    if (!b) return notFound(res, `Batch ${parts[1]}`), true;
    if (req.method === "GET" && parts.length === 2) send(res, 200, batchObject(b));
    else if (req.method === "POST" && parts[2] === "cancel") {
      const state = stateOf(b);
      if (state === "validating" || state === "in_progress" || state === "finalizing") b.cancelAt = now();
      send(res, 200, batchObject(b));
    } else notFound(res, path);
    return true;
  }

  return {
    handle,
    get answeredLines() {
      return answeredLines;
    },
    configure: (changes) => Object.assign(options, changes),
    list: () => [...batches.values()].map((b) => ({ id: b.id, status: stateOf(b), lines: b.lines, endpoint: b.endpoint })),
  };
}
