/**
 * `longdoc models [--json]`: the model catalog (shared/model/models.json, merged with
 * LONGDOC_CATALOG): per model its line and status, context, input and output limits, thinking,
 * structured output, tokenizer (exact or estimate), RPM/TPM, prices per region, and the source of
 * each fact.
 */
import type { Command } from "commander";
import { formatCost, TOKENIZERS, type Catalog, type CatalogModel, type PriceTier } from "../../shared/model/catalog.ts";
import { human, type Edge } from "../edge.ts";
import { fail } from "../exit.ts";
import { renderTable } from "../table.ts";

export interface ModelListing {
  id: string;
  line: CatalogModel["line"];
  status: CatalogModel["status"];
  retiredOn: string | null;
  contextTokens: number;
  maxInputTokens: number;
  maxOutputTokens: number;
  thinking: CatalogModel["thinking"];
  maxOutputTokensThinking: number;
  maxThinkingBudget: number;
  structuredOutput: CatalogModel["structuredOutput"];
  tokenizer: { kind: CatalogModel["tokenizer"]; counts: "exact" | "estimate"; safetyMargin: number };
  rpm: number;
  tpm: number;
  /** Per region id: its currency and tiers; regions without prices are absent (the model is not offered there). */
  prices: Record<string, { region: string; currency: string; tiers: PriceTier[] }>;
  /** Whether the endpoint's region prices it (a job can use it now). */
  available: boolean;
  sources: Record<string, string>;
  note: string | null;
}

export interface ModelsReport {
  region: string;
  regionName: string;
  currency: string;
  default: string;
  models: ModelListing[];
}

/** Every model of the catalog as `longdoc models --json` prints it. */
export function listModels(catalog: Catalog, defaultModel = "qwen3-max"): ModelsReport {
  const models = Object.entries(catalog.all).map(([id, m]): ModelListing => {
    const tok = TOKENIZERS[m.tokenizer];
    return {
      id,
      line: m.line,
      status: m.status,
      retiredOn: m.retiredOn ?? null,
      contextTokens: m.contextTokens,
      maxInputTokens: m.maxInputTokens,
      maxOutputTokens: m.maxOutputTokens,
      thinking: m.thinking,
      maxOutputTokensThinking: m.maxOutputTokensThinking,
      maxThinkingBudget: m.maxThinkingBudget,
      structuredOutput: m.structuredOutput,
      tokenizer: { kind: m.tokenizer, counts: tok.exact ? "exact" : "estimate", safetyMargin: tok.margin },
      rpm: m.rpm,
      tpm: m.tpm,
      prices: Object.fromEntries(
        Object.entries(m.prices).flatMap(([r, tiers]) => (catalog.regions[r] ? [[r, { region: catalog.regions[r]!.name, currency: catalog.regions[r]!.currency, tiers }]] : [])),
      ),
      available: Object.hasOwn(catalog.models, id),
      sources: m.sources,
      note: m.note ?? null,
    };
  });
  return { region: catalog.region, regionName: catalog.regionName, currency: catalog.currency, default: defaultModel, models };
}

const k = (n: number) => (n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n % 1024 === 0 ? `${n / 1024}K` : n.toLocaleString("en-US"));

/** The first tier's input / output price in a region, e.g. "$1.2/$6 (3 tiers)". */
function priceCell(m: ModelListing, region: string): string {
  const p = m.prices[region];
  if (!p) return "-";
  const t = p.tiers[0]!;
  return `${formatCost(t.inputPerM, p.currency, null)}/${formatCost(t.outputPerM, p.currency, null)}${p.tiers.length > 1 ? ` (${p.tiers.length} tiers)` : ""}`;
}

export function renderModels(r: ModelsReport): string {
  const regions = [...new Set(r.models.flatMap((m) => Object.keys(m.prices)))];
  const rows = r.models.map((m) => [
    m.id + (m.id === r.default ? " *" : ""),
    m.line,
    m.status + (m.retiredOn ? ` ${m.retiredOn}` : ""),
    k(m.contextTokens),
    k(m.maxInputTokens),
    m.thinking === "hybrid" ? `${k(m.maxOutputTokens)} (${k(m.maxOutputTokensThinking)} thinking)` : k(m.maxOutputTokens),
    m.thinking === "hybrid" ? k(m.maxThinkingBudget) : "-",
    m.structuredOutput,
    m.tokenizer.counts === "exact" ? `${m.tokenizer.kind} exact` : `${m.tokenizer.kind} estimate +${Math.round(m.tokenizer.safetyMargin * 100)}%`,
    `${m.rpm.toLocaleString("en-US")}/${m.tpm.toLocaleString("en-US")}`,
    ...regions.map((reg) => priceCell(m, reg)),
  ]);
  const regionNames = regions.map((reg) => `per 1M in/out, ${r.models.find((m) => m.prices[reg])!.prices[reg]!.region}`);
  const table = renderTable(["model", "line", "status", "context", "max in", "max out", "thinking budget", "JSON", "tokens", "RPM/TPM", ...regionNames], rows);
  const unavailable = r.models.filter((m) => !m.available).map((m) => m.id);
  return [
    `Model catalog (* = default). The endpoint's region: ${r.regionName} (${r.currency}).`,
    table,
    unavailable.length ? `Not offered in ${r.regionName} (no prices for it, or retired): ${unavailable.join(", ")}.` : "",
    "JSON: json_schema = strict schemas; json_object = longdoc sends the schema in the prompt, then validates and repairs.",
    "tokens: exact = longdoc carries the model's tokenizer; estimate = Qwen3 counts stand in, and budgets add the margin shown.",
    "The source and date of every fact: longdoc models --json (sources), or docs/models.md.",
  ]
    .filter(Boolean)
    .join("\n");
}

export function registerModels(program: Command, edge: Edge): void {
  program
    .command("models")
    .description("the model catalog: limits, thinking, structured output, tokenizer, RPM/TPM, prices per region, and the source of each fact")
    .option("--json", "print the catalog as one JSON object")
    .action((flags: { json?: boolean }) => {
      try {
        const report = listModels(edge.settings().catalog);
        human(flags.json).write(renderModels(report) + "\n");
        if (flags.json) process.stdout.write(JSON.stringify(report) + "\n");
      } catch (e) {
        fail(e);
      }
    });
}
