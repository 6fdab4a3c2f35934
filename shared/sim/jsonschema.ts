/**
 * A deterministic instance of a JSON Schema, for `response_format: json_schema` answers.
 * Handles type (and type arrays), object properties/required/additionalProperties, arrays
 * (items, prefixItems, minItems/maxItems), string (minLength/maxLength, enum, const, common
 * formats), number/integer (minimum/maximum, exclusive bounds, multipleOf), boolean, null,
 * enum/const anywhere, anyOf/oneOf (first branch), allOf (merged), and local $ref
 * (#/$defs/…, #/definitions/…). `pattern` is not honoured. The proof text goes into the first
 * string field without enum/const/format/pattern whose maxLength allows it.
 */

type Schema = Record<string, unknown> | boolean;

interface Ctx {
  root: Schema;
  proof: string | null;
  depth: number;
  /** Values for unbounded numbers, used in turn (a tool's results); empty: the default 1. */
  figures: number[];
  used: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function resolveRef(root: Schema, ref: string): Schema {
  if (!ref.startsWith("#")) return {};
  const parts = ref.slice(1).split("/").filter(Boolean).map((p) => decodeURIComponent(p.replace(/~1/g, "/").replace(/~0/g, "~")));
  let cur: unknown = root;
  for (const p of parts) cur = isObj(cur) ? cur[p] : undefined;
  return isObj(cur) || typeof cur === "boolean" ? cur : {};
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a, ...b };
  if (isObj(a.properties) && isObj(b.properties)) out.properties = { ...a.properties, ...b.properties };
  if (Array.isArray(a.required) && Array.isArray(b.required)) out.required = [...new Set([...a.required, ...b.required])];
  return out;
}

function normalize(s: Schema, ctx: Ctx): Record<string, unknown> {
  if (typeof s === "boolean") return {};
  let cur: Record<string, unknown> = s;
  for (let i = 0; i < 32 && typeof cur.$ref === "string"; i++) {
    const { $ref, ...rest } = cur;
    const target = resolveRef(ctx.root, $ref as string);
    cur = merge(typeof target === "boolean" ? {} : target, rest);
  }
  if (Array.isArray(cur.allOf)) {
    const { allOf, ...rest } = cur;
    cur = (allOf as Schema[]).reduce<Record<string, unknown>>((acc, sub) => merge(acc, normalize(sub, ctx)), rest);
  }
  const branches = (Array.isArray(cur.anyOf) ? cur.anyOf : Array.isArray(cur.oneOf) ? cur.oneOf : null) as Schema[] | null;
  if (branches && branches.length) {
    const { anyOf: _a, oneOf: _o, ...rest } = cur;
    const pick = branches.find((b) => !(isObj(b) && b.type === "null")) ?? branches[0]!;
    cur = merge(rest, normalize(pick, ctx));
  }
  return cur;
}

function pickType(s: Record<string, unknown>): string {
  const t = s.type;
  if (typeof t === "string") return t;
  if (Array.isArray(t) && t.length) return (t.find((x) => x !== "null") ?? t[0]) as string;
  if (isObj(s.properties) || s.required) return "object";
  if (s.items || s.prefixItems) return "array";
  if (s.minimum !== undefined || s.maximum !== undefined) return "number";
  return "string";
}

const FORMATS: Record<string, string> = {
  date: "2026-01-01",
  "date-time": "2026-01-01T00:00:00Z",
  time: "00:00:00Z",
  email: "sim@example.com",
  uri: "https://example.com/longdoc-sim",
  "uri-reference": "https://example.com/longdoc-sim",
  url: "https://example.com/longdoc-sim",
  uuid: "00000000-0000-4000-8000-000000000000",
  hostname: "example.com",
  ipv4: "127.0.0.1",
  ipv6: "::1",
};

function fitLength(text: string, s: Record<string, unknown>): string {
  const min = typeof s.minLength === "number" ? s.minLength : 0;
  const max = typeof s.maxLength === "number" ? s.maxLength : Infinity;
  let out = [...text];
  while (out.length < min) out = out.concat([..." sim"]);
  if (out.length > max) out = out.slice(0, max);
  return out.join("");
}

function number(s: Record<string, unknown>, integer: boolean): number {
  let lo = typeof s.minimum === "number" ? s.minimum : -Infinity;
  let hi = typeof s.maximum === "number" ? s.maximum : Infinity;
  if (typeof s.exclusiveMinimum === "number") lo = Math.max(lo, s.exclusiveMinimum + (integer ? 1 : 1e-6));
  if (typeof s.exclusiveMaximum === "number") hi = Math.min(hi, s.exclusiveMaximum - (integer ? 1 : 1e-6));
  let v = lo > -Infinity ? lo : hi < Infinity ? Math.min(1, hi) : 1;
  if (integer) v = Math.ceil(v);
  const step = typeof s.multipleOf === "number" && s.multipleOf > 0 ? s.multipleOf : null;
  if (step) {
    v = Math.ceil(v / step) * step;
    if (v > hi) v = Math.floor(hi / step) * step;
  }
  return v > hi ? hi : v;
}

function instance(schema: Schema, ctx: Ctx, key: string): unknown {
  if (ctx.depth > 24) return null;
  const s = normalize(schema, ctx);
  if ("const" in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  const type = pickType(s);
  ctx.depth++;
  try {
    switch (type) {
      case "object": {
        const out: Record<string, unknown> = {};
        const props = isObj(s.properties) ? s.properties : {};
        const required = Array.isArray(s.required) ? (s.required as string[]) : [];
        for (const [k, sub] of Object.entries(props)) out[k] = instance(sub as Schema, ctx, k);
        for (const k of required) if (!(k in out)) out[k] = isObj(s.additionalProperties) ? instance(s.additionalProperties, ctx, k) : "sim";
        if (Object.keys(out).length === 0 && ctx.proof !== null && s.additionalProperties !== false) {
          out.answer = ctx.proof;
          ctx.proof = null;
        }
        return out;
      }
      case "array": {
        const prefix = Array.isArray(s.prefixItems) ? (s.prefixItems as Schema[]) : [];
        const min = typeof s.minItems === "number" ? s.minItems : 1;
        const max = typeof s.maxItems === "number" ? s.maxItems : Infinity;
        const n = Math.min(Math.max(min, prefix.length, 1), max);
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) {
          const sub = prefix[i] ?? (s.items as Schema | undefined) ?? {};
          items.push(instance(sub, ctx, `${key}[${i}]`));
        }
        if (s.uniqueItems === true && items.length > 1) {
          const seen = new Set<string>();
          return items.filter((x) => !seen.has(JSON.stringify(x)) && seen.add(JSON.stringify(x)));
        }
        return items;
      }
      case "string": {
        if (typeof s.format === "string" && FORMATS[s.format]) return FORMATS[s.format];
        const free = s.pattern === undefined && s.format === undefined;
        const maxLength = typeof s.maxLength === "number" ? s.maxLength : Infinity;
        if (free && ctx.proof !== null && ctx.proof.length <= maxLength) {
          const p = ctx.proof;
          ctx.proof = null;
          return fitLength(p, s);
        }
        return fitLength(`sim ${key}`, s);
      }
      case "integer":
      case "number": {
        const unbounded = [s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum, s.multipleOf].every((x) => x === undefined);
        if (unbounded && ctx.figures.length) {
          const v = ctx.figures[ctx.used++ % ctx.figures.length]!;
          return type === "integer" ? Math.round(v) : v;
        }
        return number(s, type === "integer");
      }
      case "boolean":
        return true;
      case "null":
        return null;
      default:
        return null;
    }
  } finally {
    ctx.depth--;
  }
}

/** A deterministic value valid against `schema` (within the supported keywords), carrying `proof` in its first free string. */
export function instanceOf(schema: Schema, proof: string | null, figures: number[] = []): unknown {
  return instance(schema, { root: schema, proof, depth: 0, figures, used: 0 }, "value");
}
