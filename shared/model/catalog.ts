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
const money = z.number().nonnegative();

/** Prices per million tokens, in the region's currency. */
const tierSchema = z.strictObject({
  /** Inclusive upper bound of the request's input tokens billed at this tier. */
  upToInputTokens: positive,
  inputPerM: money,
  outputPerM: money,
  /** Implicit cache hit. */
  cachedInputPerM: money.optional(),
  /** Explicit cache creation. */
  cacheWritePerM: money.optional(),
  /** Explicit cache hit. */
  cacheReadPerM: money.optional(),
});

const regionSchema = z.strictObject({
  name: z.string(),
  /** ISO 4217 code of the currency the region bills in (USD, CNY...). */
  currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code such as USD or CNY"),
  /** Endpoint hosts of the region (docs/qwen-api.md §1); workspace domains name the region themselves. */
  hosts: z.array(z.string()).default([]),
});

/** How sure a fact is and where it comes from: a tag as docs/qwen-api.md uses them, then the source and its date. */
const sourced = z.string().regex(/\[(V|O|S|A)\b/, "must carry a tag [V], [O], [S] or [A] (docs/qwen-api.md), then the source and its date");

/** The facts every model states a source for (keys of `sources`). */
export const SOURCED_FACTS = [
  "contextTokens",
  "maxInputTokens",
  "maxOutputTokens",
  "thinking",
  "maxThinkingBudget",
  "rpm",
  "tpm",
  "prices",
  "tokenizer",
  "structuredOutput",
] as const;

/**
 * The tokenizers longdoc knows of. `qwen3` is the one it carries (exact counts, docs/tokenizer.md);
 * the Qwen3.5 family's vocabulary (about 248,000 entries against Qwen3's 151,643) is not in the
 * repo, so its counts are Qwen3 counts standing in, with a safety margin.
 */
export const TOKENIZERS = {
  qwen3: { exact: true, margin: 0, name: "Qwen3 (151,643 regular tokens)" },
  "qwen3.5": { exact: false, margin: 0.1, name: "Qwen3.5 (about 248,000 tokens; not carried: Qwen3 counts + 10% stand in)" },
} as const;
export type TokenizerKind = keyof typeof TOKENIZERS;

const modelSchema = z
  .strictObject({
    /** The product line (Max, Plus, Flash): a retired model's successors are the line's current models. */
    line: z.enum(["max", "plus", "flash"]),
    /** `current`: a stable alias Model Studio lists; `snapshot` (dated), `preview`, or `retired` (kept to name successors). */
    status: z.enum(["current", "snapshot", "preview", "retired"]).default("current"),
    retiredOn: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).optional(),
    /** The tokenizer the model uses: token counts are exact only for one longdoc carries. */
    tokenizer: z.enum(Object.keys(TOKENIZERS) as [TokenizerKind, ...TokenizerKind[]]),
    /** `json_schema` (strict schemas) or only `json_object`, with validation and repair by longdoc (docs/qwen-api.md §9). */
    structuredOutput: z.enum(["json_schema", "json_object"]),
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
    /** Ignored: every model now takes max_completion_tokens (docs/qwen-api.md §3); accepted so older override files still load. */
    maxCompletionTokens: z.boolean().optional(),
    /** Regions whose Batch API serves this model (`mode: batch`, half price); absent: none. */
    batchRegions: z.array(z.string()).optional(),
    /** Price tiers per region id (a key of `regions`); a region without the model's prices lists it as not priced there. */
    prices: z.record(z.string(), z.array(tierSchema).min(1)),
    /** Where each fact comes from: a key of SOURCED_FACTS → "[tag] source, date" (the tag as docs/qwen-api.md uses them). */
    sources: z.record(z.string(), sourced),
    note: z.string().optional(),
  })
  .superRefine((m, ctx) => {
    for (const [region, tiers] of Object.entries(m.prices)) {
      for (let i = 1; i < tiers.length; i++) {
        if (tiers[i]!.upToInputTokens <= tiers[i - 1]!.upToInputTokens) {
          ctx.addIssue({ code: "custom", path: ["prices", region, i, "upToInputTokens"], message: "tiers must be sorted by upToInputTokens, ascending" });
        }
      }
      if (tiers.at(-1)!.upToInputTokens < m.maxInputTokens) {
        ctx.addIssue({ code: "custom", path: ["prices", region], message: `the last tier must reach maxInputTokens (${m.maxInputTokens})` });
      }
    }
    if (m.maxInputTokens > m.contextTokens) ctx.addIssue({ code: "custom", path: ["maxInputTokens"], message: "must not exceed contextTokens" });
    if (m.thinking === "hybrid" && (m.maxOutputTokensThinking === 0 || m.maxThinkingBudget === 0)) {
      ctx.addIssue({ code: "custom", path: ["thinking"], message: "a hybrid model needs maxOutputTokensThinking and maxThinkingBudget > 0" });
    }
    for (const fact of SOURCED_FACTS) {
      if (!Object.hasOwn(m.sources, fact)) ctx.addIssue({ code: "custom", path: ["sources", fact], message: `missing: say where ${fact} comes from, with a tag ([V], [O], [S] or [A]) and a date` });
    }
    if (m.status === "retired" && !m.retiredOn) ctx.addIssue({ code: "custom", path: ["retiredOn"], message: "a retired model needs its retirement date" });
  });

const catalogSchema = z
  .strictObject({
    $comment: z.string().optional(),
    /** The region of an endpoint that names none (the simulator, a proxy); LONGDOC_REGION overrides it. */
    region: z.string(),
    regions: z.record(z.string(), regionSchema),
    models: z.record(z.string().min(1), modelSchema).refine((m) => Object.keys(m).length > 0, "at least one model"),
  })
  .superRefine((c, ctx) => {
    if (!Object.hasOwn(c.regions, c.region)) ctx.addIssue({ code: "custom", path: ["region"], message: `'${c.region}' is not one of regions: ${Object.keys(c.regions).join(", ")}` });
    for (const [id, m] of Object.entries(c.models)) {
      for (const r of Object.keys(m.prices)) {
        if (!Object.hasOwn(c.regions, r)) ctx.addIssue({ code: "custom", path: ["models", id, "prices", r], message: `unknown region; known: ${Object.keys(c.regions).join(", ")}` });
      }
    }
  });

export type PriceTier = z.infer<typeof tierSchema>;
export type CatalogModel = z.infer<typeof modelSchema>;
/**
 * A model as priced in one region: `tiers` are that region's, in `currency`. `countMargin` is the
 * share added to longdoc's token counts for budgets when its tokenizer is not carried (0 = exact).
 */
export type ModelInfo = Omit<CatalogModel, "prices"> & { id: string; tiers: PriceTier[]; currency: string; region: string; countMargin: number };
export interface Catalog {
  /** The region the endpoint bills in, and its currency: every cost longdoc reports is in it. */
  region: string;
  regionName: string;
  currency: string;
  models: Record<string, ModelInfo>;
  /** Every model of the catalog, priced in this region or not (for `longdoc models` and successor names). */
  all: Record<string, CatalogModel>;
  regions: Record<string, { name: string; currency: string }>;
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
 * Catalog files from before prices were per region gave each model `tiers` in USD
 * (`inputUsdPerM`...) and a top-level `currency: "USD"`: read them as the default region's prices.
 */
function upgradeLegacy(over: Record<string, unknown>, defaultRegion: string): Record<string, unknown> {
  const { currency: _currency, ...rest } = over;
  const models = isPlainObject(rest.models) ? rest.models : undefined;
  if (!models) return rest;
  const rename: Record<string, string> = { inputUsdPerM: "inputPerM", outputUsdPerM: "outputPerM", cachedInputUsdPerM: "cachedInputPerM", cacheWriteUsdPerM: "cacheWritePerM", cacheReadUsdPerM: "cacheReadPerM" };
  const out: Record<string, unknown> = {};
  for (const [id, m] of Object.entries(models)) {
    if (!isPlainObject(m) || !Array.isArray(m.tiers)) {
      out[id] = m;
      continue;
    }
    const { tiers, ...model } = m;
    const converted = (tiers as unknown[]).map((t) => (isPlainObject(t) ? Object.fromEntries(Object.entries(t).map(([k, v]) => [rename[k] ?? k, v])) : t));
    out[id] = { ...model, prices: { ...(isPlainObject(model.prices) ? model.prices : {}), [defaultRegion]: converted } };
  }
  return { ...rest, models: out };
}

export interface CatalogChoice {
  /** The model endpoint: its host picks the region (docs/qwen-api.md §1). */
  baseURL?: string | null;
  /** A region id that wins over the endpoint (LONGDOC_REGION), for a simulator or proxy standing in for a region. */
  region?: string | null;
}

/**
 * Reads the built-in catalog, merged with the JSON file at `overridePath` when given (same shape
 * as models.json; every field optional: `{"models": {"qwen3-max": {"rpm": 60}}}`), and prices it
 * for the region of `choice` (the endpoint's host, or an explicit region). Throws a `job_invalid`
 * LongdocError naming the file and field when the result is not a valid catalog, and a `usage`
 * error naming the endpoint when its region has no prices in the catalog.
 */
export function loadCatalog(overridePath?: string, choice: CatalogChoice = {}): Catalog {
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
    const defaultRegion = typeof over.region === "string" ? over.region : builtin.region;
    merged = deepMerge(builtin, upgradeLegacy(over, defaultRegion));
  }
  const parsed = catalogSchema.safeParse(merged);
  if (!parsed.success) {
    throw new LongdocError("job_invalid", `invalid model catalog\n${describe(parsed.error, overridePath ?? "shared/model/models.json")}`);
  }
  const c = parsed.data;
  const region = choice.region?.trim() || regionOfEndpoint(choice.baseURL, c.regions) || c.region;
  const info = c.regions[region];
  const where = choice.region?.trim() ? `LONGDOC_REGION=${region}` : `the endpoint ${choice.baseURL ?? ""}`.trim();
  if (!info) throw new LongdocError("usage", `${where}: region '${region}' is not in the model catalog (known: ${Object.keys(c.regions).join(", ")}); add it with LONGDOC_CATALOG`);
  const models: Record<string, ModelInfo> = {};
  for (const [id, m] of Object.entries(c.models)) {
    const { prices, ...rest } = m;
    const tiers = prices[region];
    // A model without prices in this region is left out: asking for it names the region.
    if (tiers && m.status !== "retired") models[id] = { id, ...rest, tiers, currency: info.currency, region, countMargin: TOKENIZERS[m.tokenizer].margin };
  }
  if (!Object.keys(models).length) throw new LongdocError("usage", `${where}: no model in the catalog has prices for region '${region}' (${info.name}); add them with LONGDOC_CATALOG`);
  const regions = Object.fromEntries(Object.entries(c.regions).map(([id, r]) => [id, { name: r.name, currency: r.currency }]));
  return { region, regionName: info.name, currency: info.currency, models, all: c.models, regions };
}

/** The product line of a model id: the catalog's, else read from the name (`…max…`, `…plus…`, `…flash…`). */
export function lineOf(catalog: Pick<Catalog, "all">, id: string): CatalogModel["line"] | undefined {
  if (Object.hasOwn(catalog.all, id)) return catalog.all[id]!.line;
  return /max/i.test(id) ? "max" : /plus/i.test(id) ? "plus" : /flash/i.test(id) ? "flash" : undefined;
}

/**
 * The models to move to when `id` is gone (the endpoint answers 404 for it): the current models
 * of its line priced in this region, newest first as the catalog lists them, then its previews.
 */
export function successorsOf(catalog: Pick<Catalog, "all" | "models">, id: string): string[] {
  const line = lineOf(catalog, id);
  if (!line) return [];
  const of = (status: CatalogModel["status"]) => Object.entries(catalog.all).filter(([m, info]) => m !== id && info.line === line && info.status === status && Object.hasOwn(catalog.models, m)).map(([m]) => m);
  return [...of("current"), ...of("preview")];
}

/**
 * The catalog region an endpoint belongs to: a known region host, or a workspace domain
 * `{WorkspaceId}.{region}.maas.aliyuncs.com`. Undefined for hosts that are not Model Studio's
 * (a simulator, a proxy); a Model Studio host of a region the catalog does not list is an error.
 */
export function regionOfEndpoint(baseURL: string | null | undefined, regions: Record<string, { hosts: string[]; name: string }>): string | undefined {
  if (!baseURL) return undefined;
  let host: string;
  try {
    host = new URL(baseURL).hostname.toLowerCase();
  } catch {
    return undefined;
  }
  for (const [id, r] of Object.entries(regions)) if (r.hosts.some((h) => h.toLowerCase() === host)) return id;
  const workspace = /^[^.]+\.([a-z0-9-]+)\.maas\.aliyuncs\.com$/.exec(host);
  if (workspace) return workspace[1];
  if (/(^|\.)aliyuncs\.com$/.test(host)) {
    throw new LongdocError("usage", `QWEN_BASE_URL: ${host} is a Model Studio endpoint of a region the model catalog has no prices for (known: ${Object.keys(regions).join(", ")}); add the region with LONGDOC_CATALOG, or set LONGDOC_REGION`);
  }
  return undefined;
}

/** A fallbackModel must be a catalog model priced here with a larger input than `model`, or it could never take an item. */
export function checkFallback(catalog: Catalog, spec: { fallbackModel?: string | undefined; model: string }, model: ModelInfo): ModelInfo | undefined {
  if (!spec.fallbackModel) return undefined;
  const fallback = getModel(catalog, spec.fallbackModel);
  if (fallback.maxInputTokens <= model.maxInputTokens) {
    throw new LongdocError(
      "job_invalid",
      `fallbackModel: ${fallback.id} accepts ${fallback.maxInputTokens} input tokens, no more than ${model.id}'s ${model.maxInputTokens}; choose a model with a larger input ('longdoc models' lists them)`,
    );
  }
  return fallback;
}

/** The model's entry; an unknown id throws `model_not_found` listing the known ones. */
export function getModel(catalog: Catalog, id: string): ModelInfo {
  const m = Object.hasOwn(catalog.models, id) ? catalog.models[id] : undefined;
  if (!m) {
    throw new LongdocError("model_not_found", `unknown model '${id}'; the catalog knows (priced in ${catalog.regionName}): ${Object.keys(catalog.models).join(", ")}`);
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
 * Cost of one request, in the model's region currency. The whole request is billed at the tier
 * its input size falls in; cached tokens at the tier's cache-hit rate (implicit: cachedInputPerM;
 * explicit: cacheReadPerM), cache-write tokens at cacheWritePerM, the rest of the input at
 * inputPerM and the output (reasoning included) at outputPerM. A missing cache rate falls back
 * to the input rate. `costUsd` is the same figure when the currency is USD, else null.
 */
export function priceFor(model: ModelInfo, usage: PriceUsage): { tier: string; tierIndex: number; cost: number; currency: string; costUsd: number | null } {
  const i = tierIndex(model, usage.inputTokens);
  const t = model.tiers[i]!;
  const cached = Math.max(0, Math.min(usage.cachedTokens, usage.inputTokens));
  const written = Math.max(0, Math.min(usage.cacheWriteTokens ?? 0, usage.inputTokens - cached));
  const plain = usage.inputTokens - cached - written;
  const hitRate = usage.cacheType === "ephemeral" ? (t.cacheReadPerM ?? t.cachedInputPerM ?? t.inputPerM) : (t.cachedInputPerM ?? t.inputPerM);
  const micro = plain * t.inputPerM + cached * hitRate + written * (t.cacheWritePerM ?? t.inputPerM) + usage.outputTokens * t.outputPerM;
  const cost = Number((micro / 1e6).toFixed(10));
  return { tier: tierLabel(model, i), tierIndex: i, cost, currency: model.currency, costUsd: model.currency === "USD" ? cost : null };
}

/** How a cost reads in messages and tables: "$0.0123", "¥0.0123", or "0.0123 EUR"; `digits` null prints the number as given (a cap). */
export function formatCost(amount: number, currency: string, digits: number | null = 4): string {
  const symbol: Record<string, string> = { USD: "$", CNY: "¥" };
  const n = digits === null ? String(amount) : amount.toFixed(digits);
  return symbol[currency] ? `${symbol[currency]}${n}` : `${n} ${currency}`;
}

/**
 * A job's cost cap in the region's currency: `limits.maxCost`, or `limits.maxCostUsd` where the
 * region bills in USD. A USD cap on an endpoint that bills in another currency is refused (there
 * is no exchange rate here to convert it), naming the field to use instead.
 */
export function costCap(spec: { name: string; limits: { maxCostUsd?: number; maxCost?: number } }, model: Pick<ModelInfo, "currency" | "region">): number | null {
  const { maxCostUsd, maxCost } = spec.limits;
  if (maxCostUsd !== undefined && maxCost !== undefined && (model.currency !== "USD" || maxCost !== maxCostUsd)) {
    throw new LongdocError("job_invalid", `job '${spec.name}': limits.maxCost and limits.maxCostUsd are both set; keep one (maxCost is in the endpoint's currency, ${model.currency})`);
  }
  if (maxCostUsd !== undefined && model.currency !== "USD") {
    throw new LongdocError(
      "job_invalid",
      `job '${spec.name}': limits.maxCostUsd is in USD, but the endpoint's region (${model.region}) bills in ${model.currency}; set limits.maxCost (in ${model.currency}) instead`,
    );
  }
  return maxCost ?? maxCostUsd ?? null;
}
