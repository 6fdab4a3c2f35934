/**
 * A local HTTP simulator of Qwen3-Max on Model Studio's OpenAI-compatible endpoint
 * (reference §3–§9). `POST /compatible-mode/v1/chat/completions` and
 * `POST /v1/chat/completions`; `GET …/models` lists the catalog.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { loadCatalog, type Catalog } from "../model/catalog.ts";
import { PromptCache } from "./cache.ts";
import { answerRequest, deltas, type ContentOutput } from "./content.ts";
import { errorBody, modelNotFound, providerErrors, type ProviderError } from "./errors.ts";
import { FaultPlan, parseFaultSpec, type FaultKind, type FaultSpec, type InjectedFault, type PlannedFault } from "./faults.ts";
import { countTokens } from "../tokens/index.ts";
import { isProviderError, RateWindows } from "./limits.ts";
import { findDocuments, proveDocument, withoutDocuments, type DocumentProof } from "./proof.ts";
import { parseRequest, type SimRequest } from "./request.ts";
import { createBatchService, type BatchService, type BatchSimOptions } from "./batch.ts";

export interface SimulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** When set, requests must send `Authorization: Bearer <apiKey>`; otherwise any key is accepted. */
  apiKey?: string;
  /** Requests per minute (and rpm/60 per second); unset = unlimited. */
  rpm?: number;
  /** Tokens per minute (and tpm/60 per second); unset = unlimited. */
  tpm?: number;
  /** Enforce the per-second windows as well as the minute windows (default true). */
  perSecondLimits?: boolean;
  /** Output pacing; 0 (default) streams as fast as possible. */
  decodeTokensPerSecond?: number;
  /** Delay before the first byte of every chat response (default 0). */
  latencyMs?: number;
  /** Random faults: a spec string (see faults.ts) or a parsed spec. */
  faults?: string | FaultSpec;
  /** The model catalog (default: loadCatalog(catalogPath)). */
  catalog?: Catalog;
  catalogPath?: string;
  /** Implicit / explicit context cache (default on) and its TTL (default 5 min). */
  cache?: boolean;
  cacheTtlMs?: number;
  /** Probability that a request which could hit the implicit cache does (default 0.8); seeded, so deterministic. */
  implicitCacheHitRate?: number;
  /** Seed of the implicit-cache draws (default 1). */
  cacheSeed?: number;
  /** Prefill speed: the first byte waits (prompt tokens not read from the cache) / this seconds. 0 (default) = off. */
  prefillTokensPerSecond?: number;
  /**
   * Surge refusals (reference §7: "a sudden surge gets limit_burst_rate"): a request is refused with
   * 429 limit_burst_rate when the requests of the last second (this one included) exceed both
   * `minPerSecond` and `factor` × the average per second of the minute before. Unset = off.
   */
  surge?: { factor: number; minPerSecond?: number };
  /** Non-streaming calls whose decode would take longer fail with 500 RequestTimeOut (default 300 000). */
  nonStreamingTimeoutMs?: number;
  /** Request body limit (default 64 MiB). */
  maxBodyBytes?: number;
  /** Clock for rate windows and cache TTLs (default Date.now). */
  now?: () => number;
  /**
   * Called exactly once per chat request, when it ends (answered, refused, cut by a fault or by
   * the client), in the order requests end. `longdoc sim` logs from it.
   */
  onCallEnd?: (call: SimCall) => void;
  /** The Files and Batch APIs (batch.ts): processing time, how batches end. */
  batch?: BatchSimOptions;
}

export type SimOutcome = "ok" | "error" | "midstream_error" | "dropped" | "client_closed";

/** One chat request received. The object is updated in place as the response proceeds. */
export interface SimCall {
  /** 1 for the first chat request received, 2 for the next, … */
  seq: number;
  /** The uuid in `request_id` (and in `id` = `chatcmpl-<uuid>`). */
  requestId: string;
  id: string;
  path: string;
  model: string | null;
  stream: boolean;
  thinking: boolean;
  /** 0 when the request was refused before its tokens were counted (401, 404, bad body, pre-response faults). */
  promptTokens: number;
  /**
   * Reasoning + answer tokens of the response. For a stream the client closed, the tokens written
   * to it before it went (what the provider may bill); otherwise what the response carried.
   */
  completionTokens: number;
  reasoningTokens: number;
  cachedTokens: number;
  cacheCreationTokens: number;
  documents: DocumentProof[];
  /** The last user message outside its document blocks: the question(s) the answer addresses ("" until parsed). */
  question: string;
  /** HTTP status sent; a stream that fails later keeps 200; 0 when the socket was reset before a response. */
  status: number;
  /** The provider error code sent (as status or mid-stream), else null. */
  errorCode: string | null;
  fault: FaultKind | null;
  outcome: SimOutcome | null;
  finishReason: "stop" | "length" | "tool_calls" | null;
  /** thinking_budget as applied (null when thinking is off). */
  thinkingBudget: number | null;
  /** The output caps as sent: `max_completion_tokens` and the legacy `max_tokens` (null when absent or not parsed). */
  maxCompletionTokens: number | null;
  maxTokens: number | null;
  /** The request's seed, the functions it offered, and the tool call sent back (if any). */
  seed: number | null;
  tools: string[];
  toolChoice: "auto" | "none" | { name: string } | null;
  toolCall: { name: string; arguments: string } | null;
  /** Tool results in the request since its last user message. */
  toolResults: number;
  /** Epoch ms. */
  receivedAt: number;
  firstByteAt: number | null;
  finishedAt: number | null;
}

export interface Simulator {
  /** e.g. http://127.0.0.1:PORT/compatible-mode/v1 — an `openai` client baseURL. */
  baseURL: string;
  port: number;
  host: string;
  calls: SimCall[];
  /** The next `count` chat requests (default 1 each) fail with `kind`, in call order. */
  injectFaults(faults: InjectedFault | InjectedFault[]): void;
  /** Drops pending injected faults. */
  clearFaults(): void;
  /** The Files and Batch APIs' state (batch.ts). */
  batches: BatchService;
  stop(): Promise<void>;
}

const CHAT_PATHS = new Set(["/compatible-mode/v1/chat/completions", "/v1/chat/completions"]);
const MODELS_PATHS = new Set(["/compatible-mode/v1/models", "/v1/models"]);
const PRE_RESPONSE: Partial<Record<FaultKind, ProviderError>> = {
  "500": providerErrors.internal,
  timeout: providerErrors.timeout,
  "503": providerErrors.unavailable,
  "429": providerErrors.limitRequests,
  burst: providerErrors.limitBurst,
  quota: providerErrors.quotaMinute,
  "401": providerErrors.badKey,
  "403": providerErrors.accessDenied,
  free_tier: providerErrors.freeTierOnly,
  arrearage: providerErrors.arrearage,
  prepaid_overdue: providerErrors.prepaidOverdue,
  postpaid_overdue: providerErrors.postpaidOverdue,
  not_purchased: providerErrors.notPurchased,
  free_quota: providerErrors.freeQuotaExceeded,
  "429_unknown": providerErrors.unknown429,
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const host = opts.host ?? "127.0.0.1";
  const catalog = opts.catalog ?? loadCatalog(opts.catalogPath);
  const now = opts.now ?? Date.now;
  const faults = new FaultPlan(typeof opts.faults === "string" ? parseFaultSpec(opts.faults) : opts.faults);
  const cache = new PromptCache({ enabled: opts.cache ?? true, ttlMs: opts.cacheTtlMs, implicitHitRate: opts.implicitCacheHitRate, seed: opts.cacheSeed });
  const prefillRate = opts.prefillTokensPerSecond ?? 0;
  const windows = new Map<string, RateWindows>();
  const rateFor = (model: string) => {
    let w = windows.get(model);
    if (!w) windows.set(model, (w = new RateWindows({ rpm: opts.rpm, tpm: opts.tpm, perSecond: opts.perSecondLimits, surge: opts.surge })));
    return w;
  };
  const rate = opts.decodeTokensPerSecond ?? 0;
  const maxBody = opts.maxBodyBytes ?? 64 * 1024 * 1024;
  const calls: SimCall[] = [];
  // How each request in flight ends (the handler's catch-all uses it).
  const inFlight = new WeakMap<ServerResponse, { call: SimCall; end: (outcome: SimOutcome) => void }>();
  const sockets = new Set<Socket>();
  const batches = createBatchService({ catalog, faults, options: opts.batch, now });

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      // A bug in the simulator: report it as the provider's 500 if nothing was sent yet.
      console.error("longdoc sim: internal failure:", e);
      const open = inFlight.get(res);
      if (open && open.call.outcome === null) {
        if (!res.headersSent) open.call.status = 500;
        open.call.errorCode ??= providerErrors.internal.code;
        open.end("error");
      }
      if (!res.headersSent) sendJson(res, 500, errorBody(providerErrors.internal, randomUUID()));
      else res.destroy();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  async function readBody(req: IncomingMessage): Promise<Buffer | null> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > maxBody) return null;
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "");
    if (await batches.handle(req, res, path)) return;
    if (req.method === "GET" && MODELS_PATHS.has(path)) {
      return sendJson(res, 200, { object: "list", data: Object.keys(catalog.models).map((id) => ({ id, object: "model", created: 0, owned_by: "system" })) });
    }
    if (!CHAT_PATHS.has(path)) {
      req.resume();
      return sendJson(res, 404, { error: { message: `No route for ${req.method} ${path}`, type: "invalid_request_error", param: null, code: "not_found" } });
    }
    if (req.method !== "POST") {
      req.resume();
      return sendJson(res, 405, { error: { message: "Use POST.", type: "invalid_request_error", param: null, code: "method_not_allowed" } });
    }

    const requestId = randomUUID();
    const call: SimCall = {
      seq: calls.length + 1,
      requestId,
      id: `chatcmpl-${requestId}`,
      path,
      model: null,
      stream: false,
      thinking: false,
      promptTokens: 0,
      completionTokens: 0,
      reasoningTokens: 0,
      cachedTokens: 0,
      cacheCreationTokens: 0,
      documents: [],
      question: "",
      status: 0,
      errorCode: null,
      fault: null,
      outcome: null,
      finishReason: null,
      thinkingBudget: null,
      maxCompletionTokens: null,
      maxTokens: null,
      seed: null,
      tools: [],
      toolChoice: null,
      toolCall: null,
      toolResults: 0,
      receivedAt: Date.now(),
      firstByteAt: null,
      finishedAt: null,
    };
    calls.push(call);
    // Every request ends exactly once, whatever happened to the ones before it.
    const end = (outcome: SimOutcome) => {
      if (call.outcome !== null) return;
      call.outcome = outcome;
      call.finishedAt = Date.now();
      opts.onCallEnd?.(call);
    };
    // The client may hang up at any point (during the latency, the prefill, the decode or the
    // stream); a listener from the start sees it whenever it happens.
    let clientGone = false;
    res.on("close", () => {
      if (!res.writableFinished) clientGone = true;
    });
    const gone = () => clientGone || res.destroyed;
    // Resolves true once the response is handed to the socket whole, false if the client left first.
    const delivered = () =>
      new Promise<boolean>((resolve) => {
        if (res.writableFinished) return resolve(true);
        if (gone()) return resolve(false);
        res.once("finish", () => resolve(true));
        res.once("close", () => resolve(res.writableFinished));
      });
    inFlight.set(res, { call, end });
    const fail = (e: ProviderError, sse = false) => {
      if (gone()) return end("client_closed");
      call.status = e.status;
      call.errorCode = e.code;
      call.firstByteAt = Date.now();
      end("error");
      if (sse) {
        res.writeHead(e.status, { "content-type": "text/event-stream;charset=UTF-8", "cache-control": "no-cache" });
        res.end(`data: ${JSON.stringify(errorBody(e, requestId))}\n\n`);
      } else sendJson(res, e.status, errorBody(e, requestId));
    };

    let raw: Buffer | null;
    try {
      raw = await readBody(req);
    } catch {
      // the client went away while sending its body
      return end("client_closed");
    }
    if (raw === null) {
      call.status = 413;
      end("error");
      res.setHeader("connection", "close");
      return sendJson(res, 413, errorBody({ status: 413, code: "RequestTooLarge", type: "invalid_request_error", message: `Request body exceeds ${maxBody} bytes.` }, requestId));
    }
    // No key at all is refused even when any key is accepted (reference §1: every request carries a Bearer key).
    const auth = req.headers.authorization;
    if (!auth || !/^Bearer\s+\S/.test(auth)) return fail(providerErrors.badKey);
    if (opts.apiKey !== undefined && auth !== `Bearer ${opts.apiKey}`) return fail(providerErrors.badKey);

    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      return fail({ status: 400, code: "invalid_parameter_error", type: "invalid_request_error", message: "The request body is not valid JSON." });
    }
    const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    call.model = typeof b.model === "string" ? b.model : null;
    call.stream = b.stream === true;

    if (opts.latencyMs) await sleep(opts.latencyMs);
    if (gone()) return end("client_closed");

    const fault = faults.next();
    call.fault = fault?.kind ?? null;
    if (fault) {
      const pre = PRE_RESPONSE[fault.kind];
      if (pre) return fail(pre);
      if (fault.kind === "404") return fail(modelNotFound(call.model ?? "unknown"));
      if (fault.kind === "moderation") return fail(providerErrors.inputModeration, call.stream);
      if (fault.kind === "reset") {
        end("dropped");
        req.socket.destroy();
        return;
      }
    }

    const parsed = parseRequest(body, catalog);
    if ("status" in parsed) {
      call.promptTokens = parsed.promptTokens ?? 0;
      return fail(parsed);
    }
    call.thinking = parsed.thinking;
    call.thinkingBudget = parsed.thinking ? parsed.thinkingBudget : null;
    call.maxCompletionTokens = parsed.sent.maxCompletionTokens;
    call.maxTokens = parsed.sent.maxTokens;
    call.promptTokens = parsed.promptTokens;
    call.seed = parsed.seed;
    call.tools = parsed.tools;
    call.toolChoice = parsed.tools.length ? parsed.toolChoice : null;
    const lastUserAt = parsed.messages.findLastIndex((m) => m.role === "user");
    const toolResults = parsed.messages.slice(lastUserAt + 1).filter((m) => m.role === "tool").map((m) => m.text);
    call.toolResults = toolResults.length;

    const found = parsed.messages.flatMap((m) => findDocuments(m.text));
    call.documents = found.map(proveDocument);

    const admission = rateFor(parsed.modelName).admit(now(), parsed.promptTokens);
    if (isProviderError(admission)) return fail(admission);

    const lastUser = parsed.messages.findLast((m) => m.role === "user");
    call.question = lastUser ? withoutDocuments(lastUser.text).trim() : "";
    const cacheUse = cache.lookup(parsed.messages, now());
    call.cachedTokens = Math.min(cacheUse.cachedTokens, parsed.promptTokens);
    call.cacheCreationTokens = cacheUse.creationTokens;

    const out = answerRequest(parsed, found, fault, { documents: call.documents, question: call.question, toolResults });
    call.toolCall = out.toolCall;
    call.reasoningTokens = out.reasoningTokens;
    call.completionTokens = out.reasoningTokens + out.answerTokens;
    call.finishReason = out.finishReason;
    const usage = usageOf(parsed, out, call.cachedTokens, cacheUse);
    const envelope = { created: Math.floor(Date.now() / 1000), model: parsed.modelName, id: call.id };

    // Prefill: time to first token grows with the input the model has to read (cached tokens are free).
    if (prefillRate > 0) await sleep(((parsed.promptTokens - call.cachedTokens) / prefillRate) * 1000);

    const succeed = () => {
      admission.settle(call.completionTokens);
      cacheUse.commit(now());
      end("ok");
    };
    // The client hung up: what was streamed counts against the rate windows (the provider
    // generated it); nothing is cached, as for any response that did not complete.
    const clientClosed = (streamed: { reasoningTokens: number; completionTokens: number }) => {
      call.reasoningTokens = streamed.reasoningTokens;
      call.completionTokens = streamed.completionTokens;
      admission.settle(call.completionTokens);
      end("client_closed");
    };
    if (gone()) return clientClosed({ reasoningTokens: 0, completionTokens: 0 });

    if (!parsed.stream) {
      const decodeMs = rate > 0 ? (call.completionTokens / rate) * 1000 : 0;
      const limit = opts.nonStreamingTimeoutMs ?? 300_000;
      if (decodeMs > limit) {
        await sleep(limit);
        return fail(providerErrors.timeout);
      }
      if (decodeMs) await sleep(decodeMs);
      // A non-streaming answer reaches the client whole or not at all.
      if (gone()) return clientClosed({ reasoningTokens: 0, completionTokens: 0 });
      if (fault?.kind === "drop") {
        end("dropped");
        req.socket.destroy();
        return;
      }
      if (fault?.kind === "midstream") return fail(providerErrors.outputModeration);
      const message: Record<string, unknown> = { role: "assistant", content: out.answer };
      if (parsed.thinking) message.reasoning_content = out.reasoning;
      if (out.toolCall) message.tool_calls = [{ id: toolCallId(call), type: "function", function: out.toolCall }];
      call.status = 200;
      call.firstByteAt = Date.now();
      sendJson(res, 200, {
        choices: [{ message, finish_reason: out.finishReason, index: 0, logprobs: null }],
        object: "chat.completion",
        usage,
        created: envelope.created,
        system_fingerprint: null,
        model: envelope.model,
        id: envelope.id,
      });
      if (await delivered()) return succeed();
      return clientClosed({ reasoningTokens: 0, completionTokens: 0 });
    }

    await stream(res, req, call, parsed, out, usage, envelope, fault, { succeed, clientClosed, end, gone, delivered });
  }

  async function stream(
    res: ServerResponse,
    req: IncomingMessage,
    call: SimCall,
    parsed: SimRequest,
    out: ContentOutput,
    usage: Record<string, unknown>,
    env: { created: number; model: string; id: string },
    fault: PlannedFault | null,
    ends: {
      succeed: () => void;
      clientClosed: (streamed: { reasoningTokens: number; completionTokens: number }) => void;
      end: (outcome: SimOutcome) => void;
      gone: () => boolean;
      delivered: () => Promise<boolean>;
    },
  ): Promise<void> {
    const chunk = (choices: unknown[], u: unknown = null) =>
      `data: ${JSON.stringify({ choices, object: "chat.completion.chunk", usage: u, created: env.created, system_fingerprint: null, model: env.model, id: env.id })}\n\n`;
    const choice = (delta: Record<string, unknown>, finish: string | null = null) => ({ delta, finish_reason: finish, index: 0, logprobs: null });

    let flushed: Promise<void> = Promise.resolve();
    const send = (data: string): boolean => {
      let ok = true;
      flushed = new Promise<void>((r) => {
        ok = res.write(data, () => r());
      });
      return ok;
    };
    res.writeHead(200, { "content-type": "text/event-stream;charset=UTF-8", "cache-control": "no-cache" });
    call.status = 200;
    call.firstByteAt = Date.now();
    send(chunk([choice(parsed.thinking ? { content: null, role: "assistant", reasoning_content: "" } : { content: "", role: "assistant" })]));

    const pieces: { text: string; reasoning: boolean; tool?: "open" | "args" }[] = [
      ...deltas(out.reasoning).map((text) => ({ text, reasoning: true })),
      ...deltas(out.answer).map((text) => ({ text, reasoning: false })),
    ];
    if (out.toolCall) {
      // OpenAI's streaming shape for a tool call [A for Model Studio]: the first delta carries the
      // call's index, id, type and name with empty arguments; later deltas append to the arguments.
      pieces.push({ text: "", reasoning: false, tool: "open" });
      for (const a of argumentPieces(out.toolCall.arguments)) pieces.push({ text: a, reasoning: false, tool: "args" });
    }
    const totalChars = out.reasoning.length + out.answer.length + (out.toolCall?.arguments.length ?? 0) || 1;
    const totalTokens = call.completionTokens;
    const failAt =
      fault?.kind === "midstream" || fault?.kind === "drop" || fault?.kind === "malformed" ? Math.min(pieces.length, fault.afterDeltas ?? Math.max(1, Math.floor(pieces.length / 2))) : -1;
    const start = Date.now();
    let chars = 0;
    // What has been written, to count the tokens of a stream the client cuts.
    let reasoningSent = "";
    let answerSent = "";
    const streamed = () => {
      const reasoningTokens = countTokens(reasoningSent);
      return { reasoningTokens, completionTokens: reasoningTokens + countTokens(answerSent) };
    };
    for (let n = 0; n <= pieces.length; n++) {
      if (ends.gone()) return ends.clientClosed(streamed());
      if (n === failAt) {
        if (fault!.kind === "drop") {
          ends.end("dropped");
          // let what was written reach the client first, then cut the connection
          await Promise.race([flushed, sleep(1000)]);
          req.socket.destroy();
          return;
        }
        ends.end("midstream_error");
        if (fault!.kind === "malformed") {
          // half a chunk, as a proxy that cut a line would pass on
          res.end(`data: {"choices":[{"delta":{"content":"tru\n\n`);
          return;
        }
        call.errorCode = providerErrors.outputModeration.code;
        res.end(`data: ${JSON.stringify(errorBody(providerErrors.outputModeration, call.requestId))}\n\n`);
        return;
      }
      if (n === pieces.length) break;
      const p = pieces[n]!;
      const delta = p.tool
        ? toolDelta(p, call, out, parsed.thinking)
        : p.reasoning
          ? { content: null, reasoning_content: p.text }
          : parsed.thinking
            ? { content: p.text, reasoning_content: null }
            : { content: p.text };
      const ok = send(chunk([choice(delta)]));
      if (p.reasoning) reasoningSent += p.text;
      else answerSent += p.text;
      chars += p.text.length;
      if (rate > 0) {
        const due = start + ((totalTokens * chars) / totalChars / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      } else if (!ok && !ends.gone()) {
        // (a socket that already closed emits neither event again)
        await new Promise<void>((r) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            r();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      } else if (n % 64 === 63) {
        await new Promise<void>((r) => setImmediate(r));
      }
    }
    res.write(chunk([choice(parsed.thinking ? { content: "", reasoning_content: null } : { content: "" }, out.finishReason)]));
    if (parsed.includeUsage) res.write(chunk([], usage));
    res.end("data: [DONE]\n\n");
    // ok only once the last chunk is handed to the socket; a client gone before that cut it
    if (await ends.delivered()) ends.succeed();
    else ends.clientClosed(streamed());
  }

  function usageOf(parsed: SimRequest, out: ContentOutput, cached: number, cacheUse: { explicit: boolean; creationTokens: number }) {
    const completion = out.reasoningTokens + out.answerTokens;
    const details: Record<string, unknown> = { cached_tokens: cached };
    if (cacheUse.explicit) {
      details.cache_creation = { ephemeral_5m_input_tokens: cacheUse.creationTokens };
      details.cache_creation_input_tokens = cacheUse.creationTokens;
      details.cache_type = "ephemeral";
    }
    return {
      prompt_tokens: parsed.promptTokens,
      completion_tokens: completion,
      total_tokens: parsed.promptTokens + completion,
      completion_tokens_details: { reasoning_tokens: out.reasoningTokens },
      prompt_tokens_details: details,
    };
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | null = null;
  return {
    baseURL: `http://${host}:${port}/compatible-mode/v1`,
    port,
    host,
    calls,
    injectFaults: (f) => faults.inject(f),
    clearFaults: () => faults.clear(),
    batches,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return stopped;
    },
  };
}

/** The id of the simulated tool call: stable per request. */
const toolCallId = (call: SimCall) => `call_${call.requestId.replace(/-/g, "").slice(0, 24)}`;

function toolDelta(p: { text: string; tool?: "open" | "args" }, call: SimCall, out: ContentOutput, thinking: boolean): Record<string, unknown> {
  const fn = p.tool === "open" ? { index: 0, id: toolCallId(call), type: "function", function: { name: out.toolCall!.name, arguments: "" } } : { index: 0, function: { arguments: p.text } };
  return thinking ? { content: null, reasoning_content: null, tool_calls: [fn] } : { content: null, tool_calls: [fn] };
}

/** Tool-call arguments in stream-sized pieces (about 64 characters each). */
function argumentPieces(args: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i += 64) out.push(args.slice(i, i + 64));
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
