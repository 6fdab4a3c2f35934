/**
 * Context cache (reference §5, §8), approximated:
 *
 * Implicit (requests without cache_control markers): the prompt is rendered as ChatML
 * (`<|im_start|>{role}\n{content}<|im_end|>\n` per message) and hashed cumulatively every
 * 512 characters. A later request whose rendered prompt shares a prefix with one answered in
 * the last `ttlMs` (default 5 min, reset on hit) reports `cached_tokens` = the Qwen token
 * count of the longest shared 512-character-aligned prefix, when that is at least 256 tokens.
 *
 * Explicit (any content part with `cache_control: {type: "ephemeral"}`; implicit is then off
 * for the request): each of the last 4 markers ends a prefix (everything up to and including
 * the marked part). The longest prefix seen within the TTL is a hit (`cached_tokens`,
 * TTL reset); longer marked prefixes of at least 1024 tokens are created after the response
 * (`cache_creation_input_tokens` = their longest token count minus the hit).
 *
 * Entries are written only when a response completes successfully.
 *
 * Implicit hits are not guaranteed on the real service [A]: a request that
 * could hit does so with probability `implicitHitRate` (default 0.8), drawn from a mulberry32
 * PRNG seeded with `seed` (default 1), so the same requests in the same order hit and miss alike.
 * A miss still refreshes the entries. Explicit markers always hit within their TTL.
 */
import { createHash } from "node:crypto";
import { mulberry32 } from "../random.ts";
import { countTokens } from "../tokens/index.ts";

export interface SimMessage {
  role: string;
  /** Text of the content (parts joined with ""). */
  text: string;
  /** Text parts, with their cache marker, when the content was an array. */
  parts: { text: string; cached: boolean }[] | null;
  /** An assistant message's tool calls (their JSON is in `text`). */
  toolCalls?: number;
}

export interface CacheUsage {
  cachedTokens: number;
  /** Explicit cache only. */
  creationTokens: number;
  explicit: boolean;
  /** Call after a successful response to store what this request created / refreshed. */
  commit(now: number): void;
}

const STEP = 512;
const IMPLICIT_MIN = 256;
const EXPLICIT_MIN = 1024;
const MAX_MARKERS = 4;
export const DEFAULT_IMPLICIT_HIT_RATE = 0.8;

export const renderMessage = (m: { role: string; text: string }) => `<|im_start|>${m.role}\n${m.text}<|im_end|>\n`;

export class PromptCache {
  private readonly implicit = new Map<string, number>();
  private readonly explicit = new Map<string, { expires: number; tokens: number }>();
  private readonly ttlMs: number;
  private readonly enabled: boolean;
  private readonly hitRate: number;
  private readonly rng: () => number;

  constructor(opts: { ttlMs?: number; enabled?: boolean; implicitHitRate?: number; seed?: number } = {}) {
    this.ttlMs = opts.ttlMs ?? 5 * 60_000;
    this.enabled = opts.enabled ?? true;
    const rate = opts.implicitHitRate ?? DEFAULT_IMPLICIT_HIT_RATE;
    if (!(rate >= 0 && rate <= 1)) throw new Error(`implicitCacheHitRate must be within [0, 1], got ${rate}`);
    this.hitRate = rate;
    this.rng = mulberry32(opts.seed ?? 1);
  }

  private sweep(now: number): void {
    if (this.implicit.size > 200_000) for (const [k, exp] of this.implicit) if (exp <= now) this.implicit.delete(k);
    if (this.explicit.size > 10_000) for (const [k, e] of this.explicit) if (e.expires <= now) this.explicit.delete(k);
  }

  lookup(messages: SimMessage[], now: number): CacheUsage {
    this.sweep(now);
    const none: CacheUsage = { cachedTokens: 0, creationTokens: 0, explicit: false, commit: () => {} };
    if (!this.enabled) return none;
    const hasMarkers = messages.some((m) => m.parts?.some((p) => p.cached));
    return hasMarkers ? this.lookupExplicit(messages, now) : this.lookupImplicit(messages, now);
  }

  private lookupImplicit(messages: SimMessage[], now: number): CacheUsage {
    const rendered = messages.map(renderMessage).join("");
    const hashes: { end: number; key: string }[] = [];
    const h = createHash("sha256");
    let pos = 0;
    for (let end = STEP; end <= rendered.length; end += STEP) {
      // never split a surrogate pair
      const e = /[\ud800-\udbff]/.test(rendered[end - 1] ?? "") ? end - 1 : end;
      h.update(rendered.slice(pos, e));
      pos = e;
      hashes.push({ end: e, key: h.copy().digest("base64") });
    }
    let hit = 0;
    for (const x of hashes) {
      const exp = this.implicit.get(x.key);
      if (exp !== undefined && exp > now) hit = x.end;
    }
    const tokens = hit ? countTokens(rendered.slice(0, hit)) : 0;
    // A possible hit draws one number; requests with nothing to hit draw none.
    const cachedTokens = tokens >= IMPLICIT_MIN && (this.hitRate >= 1 || this.rng() < this.hitRate) ? tokens : 0;
    return {
      cachedTokens,
      creationTokens: 0,
      explicit: false,
      commit: (t) => {
        for (const x of hashes) this.implicit.set(x.key, t + this.ttlMs);
      },
    };
  }

  private lookupExplicit(messages: SimMessage[], now: number): CacheUsage {
    const markers: { key: string; prefix: string }[] = [];
    let before = "";
    for (const m of messages) {
      if (m.parts) {
        let acc = `<|im_start|>${m.role}\n`;
        for (const p of m.parts) {
          acc += p.text;
          if (p.cached) markers.push({ key: "", prefix: before + acc });
        }
      }
      before += renderMessage(m);
    }
    const last = markers.slice(-MAX_MARKERS).map((x) => ({ ...x, key: createHash("sha256").update(x.prefix).digest("base64") }));
    let hitIndex = -1;
    let cachedTokens = 0;
    for (let k = last.length - 1; k >= 0; k--) {
      const e = this.explicit.get(last[k]!.key);
      if (e && e.expires > now) {
        hitIndex = k;
        cachedTokens = e.tokens;
        break;
      }
    }
    const created: { key: string; tokens: number }[] = [];
    for (let k = hitIndex + 1; k < last.length; k++) {
      const tokens = countTokens(last[k]!.prefix);
      if (tokens >= EXPLICIT_MIN) created.push({ key: last[k]!.key, tokens });
    }
    const longest = created.reduce((mx, c) => Math.max(mx, c.tokens), 0);
    return {
      cachedTokens,
      creationTokens: Math.max(0, longest - cachedTokens),
      explicit: true,
      commit: (t) => {
        if (hitIndex >= 0) this.explicit.set(last[hitIndex]!.key, { expires: t + this.ttlMs, tokens: cachedTokens });
        for (const c of created) this.explicit.set(c.key, { expires: t + this.ttlMs, tokens: c.tokens });
      },
    };
  }
}
