/**
 * The model catalog: limits, default quotas and prices per model id, read from
 * `shared/model/models.json` and optionally merged with a user JSON file of the same shape in which
 * any number may be overridden (or a whole model added).
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { LongdocError } from "../errors.ts";
import builtin from "./models.json" with { type: "json" };

const count = z.number().int().nonnegative();
const positive = z.number().int().positive();
const usd = z.number().nonnegative();

const tierSchema = z.strictObject({
  /** Inclusive upper bound of the request's input tokens billed at this tier. */
  upToInputTokens: positive,
  inputUsdPerM: usd,
  outputUsdPerM: usd,
  /** Implicit cache hit. */
  cachedInputUsdPerM: usd.optional(),
  /** Explicit cache creation. */
  cacheWriteUsdPerM: usd.optional(),
  /** Explicit cache hit. */
  cacheReadUsdPerM: usd.optional(),
});

const modelSchema = z
  .strictObject({
    contextTokens: positive,
    maxInputTokens: positive,
    maxOutputTokens: positive,
    /** 0 for models without a thinking mode. */
    maxOutputTokensThinking: count,
    maxThinkingBudget: count,
    thinking: z.enum(["hybrid", "none"]),
    rpm: positive,
    tpm: positive,
    /** Assumed speeds, used until the fleet has measured the model ([A]). */
    decodeTokensPerSecond: z.number().positive().default(50),
    prefillTokensPerSecond: z.number().positive().default(5000),
    /** Whether the API takes `max_completion_tokens` (one cap on reasoning plus answer) for this model. */
    maxCompletionTokens: z.boolean().default(false),
    tiers: z.array(tierSchema).min(1),
    sources: z.string().optional(),
    note: z.string().optional(),
  })
  .superRefine((m, ctx) => {
    for (let i = 1; i < m.tiers.length; i++) {
      if (m.tiers[i]!.upToInputTokens <= m.tiers[i - 1]!.upToInputTokens) {
        ctx.addIssue({ code: "custom", path: ["tiers", i, "upToInputTokens"], message: "tiers must be sorted by upToInputTokens, ascending" });
      }
    }
    if (m.tiers.at(-1)!.upToInputTokens < m.maxInputTokens) {
      ctx.addIssue({ code: "custom", path: ["tiers"], message: `the last tier must reach maxInputTokens (${m.maxInputTokens})` });
    }
    if (m.maxInputTokens > m.contextTokens) ctx.addIssue({ code: "custom", path: ["maxInputTokens"], message: "must not exceed contextTokens" });
    if (m.thinking === "hybrid" && (m.maxOutputTokensThinking === 0 || m.maxThinkingBudget === 0)) {
      ctx.addIssue({ code: "custom", path: ["thinking"], message: "a hybrid model needs maxOutputTokensThinking and maxThinkingBudget > 0" });
    }
  });

const catalogSchema = z.object({
  $comment: z.string().optional(),
  currency: z.literal("USD"),
  region: z.string(),
  models: z.record(z.string().min(1), modelSchema).refine((m) => Object.keys(m).length > 0, "at least one model"),
});

export type PriceTier = z.infer<typeof tierSchema>;
export type ModelInfo = z.infer<typeof modelSchema> & { id: string };
export interface Catalog {
  currency: "USD";
  region: string;
  models: Record<string, ModelInfo>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Objects merge key by key; arrays (price tiers) and scalars are replaced whole. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

function describe(error: z.ZodError, where: string): string {
  return error.issues.map((i) => `${where}: ${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("\n");
}

/**
 * Reads the built-in catalog, merged with the JSON file at `overridePath` when given (same shape
 * as models.json; every field optional: `{"models": {"qwen3-max": {"rpm": 60}}}`). Throws a
 * `job_invalid` LongdocError naming the file and field when the result is not a valid catalog.
 */
export function loadCatalog(overridePath?: string): Catalog {
  let merged: unknown = builtin;
  if (overridePath) {
    let text: string;
    try {
      text = readFileSync(overridePath, "utf8");
    } catch (e) {
      throw new LongdocError("job_invalid", `cannot read the model catalog override ${overridePath}: ${(e as Error).message}`, { cause: e });
    }
    let over: unknown;
    try {
      over = JSON.parse(text);
    } catch (e) {
      throw new LongdocError("job_invalid", `${overridePath}: not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!isPlainObject(over)) throw new LongdocError("job_invalid", `${overridePath}: expected a JSON object like {"models": {"qwen3-max": {"rpm": 60}}}`);
    merged = deepMerge(builtin, over);
  }
  const parsed = catalogSchema.safeParse(merged);
  if (!parsed.success) {
    throw new LongdocError("job_invalid", `invalid model catalog\n${describe(parsed.error, overridePath ?? "shared/model/models.json")}`);
  }
  const models: Record<string, ModelInfo> = {};
  for (const [id, m] of Object.entries(parsed.data.models)) models[id] = { id, ...m };
  return { currency: parsed.data.currency, region: parsed.data.region, models };
}

/** The model's entry; an unknown id throws `model_not_found` listing the known ones. */
export function getModel(catalog: Catalog, id: string): ModelInfo {
  const m = Object.hasOwn(catalog.models, id) ? catalog.models[id] : undefined;
  if (!m) {
    throw new LongdocError("model_not_found", `unknown model '${id}'; the catalog knows: ${Object.keys(catalog.models).join(", ")}`);
  }
  return m;
}

export interface PriceUsage {
  /** prompt_tokens: includes cached and cache-write tokens. */
  inputTokens: number;
  /** completion_tokens: answer plus reasoning. */
  outputTokens: number;
  /** prompt_tokens_details.cached_tokens */
  cachedTokens: number;
  /** prompt_tokens_details.cache_creation_input_tokens (explicit cache only). */
  cacheWriteTokens?: number;
  /** "ephemeral" when the request used explicit cache markers: hits are billed at cacheReadUsdPerM. */
  cacheType?: "implicit" | "ephemeral";
}

const kLabel = (n: number) => (n % 1024 === 0 ? `${n / 1024}K` : String(n));

/** A readable name of the tier, e.g. "0-32K", "32K-128K", "128K-252K" (K = 1024). */
export function tierLabel(model: ModelInfo, index: number): string {
  const lo = index === 0 ? "0" : kLabel(model.tiers[index - 1]!.upToInputTokens);
  return `${lo}-${kLabel(model.tiers[index]!.upToInputTokens)}`;
}

/** Index of the tier a request with `inputTokens` falls in (the last tier above the top). */
export function tierIndex(model: ModelInfo, inputTokens: number): number {
  const i = model.tiers.findIndex((t) => inputTokens <= t.upToInputTokens);
  return i === -1 ? model.tiers.length - 1 : i;
}

/**
 * Cost of one request. The whole request is billed at the tier its input size falls in;
 * cached tokens at the tier's cache-hit rate (implicit: cachedInputUsdPerM; explicit:
 * cacheReadUsdPerM), cache-write tokens at cacheWriteUsdPerM, the rest of the input at
 * inputUsdPerM and the output (reasoning included) at outputUsdPerM. A missing cache rate
 * falls back to the input rate.
 */
export function priceFor(model: ModelInfo, usage: PriceUsage): { tier: string; tierIndex: number; costUsd: number } {
  const i = tierIndex(model, usage.inputTokens);
  const t = model.tiers[i]!;
  const cached = Math.max(0, Math.min(usage.cachedTokens, usage.inputTokens));
  const written = Math.max(0, Math.min(usage.cacheWriteTokens ?? 0, usage.inputTokens - cached));
  const plain = usage.inputTokens - cached - written;
  const hitRate = usage.cacheType === "ephemeral" ? (t.cacheReadUsdPerM ?? t.cachedInputUsdPerM ?? t.inputUsdPerM) : (t.cachedInputUsdPerM ?? t.inputUsdPerM);
  const micro =
    plain * t.inputUsdPerM + cached * hitRate + written * (t.cacheWriteUsdPerM ?? t.inputUsdPerM) + usage.outputTokens * t.outputUsdPerM;
  return { tier: tierLabel(model, i), tierIndex: i, costUsd: Number((micro / 1e6).toFixed(10)) };
}
