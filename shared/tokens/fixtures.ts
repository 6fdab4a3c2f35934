/**
 * Texts for checking and benchmarking the tokenizer (used by test/tokens.test.ts and
 * bench/tokenizer.ts; not imported by the runtime).
 */
import { mulberry32 } from "../random.ts";

/** Crude tag stripper: drops scripts/styles and tags, decodes a few entities. Good enough for a bench. */
export function stripTags(html: string): string {
  return html
    .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(/&nbsp;/g, "\u00a0")
    .replace(/&amp;/g, "&")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/[ \t]+\n/g, "\n")
    .replace(/\n{3,}/g, "\n\n");
}

/** A mixed-script text meant to break tokenizers: every edge of normalization and pre-tokenization. */
export function tortureText(): string {
  const parts = [
    // English, contractions in every case
    "The quick brown fox doesn't jump; DON'T, Don'T, we'Ll, WE'LL, we'll, I'm, I'M, you'RE, they'Ve, he'D, it'S, 'tis, rock 'n' roll, o'clock, l'été.",
    "Contractions glued: '''s ''re 's't'd 'll'LL 'ſ 'Ş 'sup 'res 'velvet \"quoted\" ‘curly’ “double” it’s DON’T.",
    // CJK, Japanese, Korean (incl. a long run of Han without spaces → long pieces)
    "中华人民共和国国务院关于进一步加强和改进新形势下知识产权保护工作的若干意见指出要坚持以人民为中心的发展思想全面贯彻新发展理念构建新发展格局推动高质量发展。",
    "你是谁？我是通义千问，由阿里云开发的超大规模语言模型。第１２３条：营业收入为人民币1,234,567.89万元（同比增长12.5%）。",
    "日本語のテキスト：東京都渋谷区、カタカナとひらがな、ｶﾀｶﾅ（半角）、「括弧」。２０２４年３月期決算短信〔日本基準〕（連結）",
    "한국어 텍스트: 삼성전자는 2023년 매출 258조 9,355억 원을 기록했습니다. 자모 분해: \u1112\u1161\u11ab\u1100\u1173\u11af (NFC로 합쳐짐).",
    // Arabic, Hebrew, Cyrillic, Greek, Devanagari, Thai, Vietnamese
    "العربية: بلغت الإيرادات ١٢٣٬٤٥٦ ديناراً في عام ٢٠٢٣م، بزيادة قدرها ٥٪. עברית: שלום עולם. Русский: Привет, мир! Ελληνικά: Γειά σου Κόσμε.",
    "हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก Tiếng Việt: Xin chào thế giới, người Việt Nam, ố ặ ữ.",
    // digits, figures, money, math
    "Revenue $1,234,567.89 (+12.5%) vs. €987.654,32 — FY2023/24; −0.5 ≤ x ≥ 3×10⁻⁹; ½ ¾ ① ② Ⅻ; 0x1F4A9; 3.14159265358979323846; 1e-10; #42 @user ~/path/to/file.ts",
    // markdown table and code
    "| Segment | 2022 | 2023 | Δ% |\n|:--------|-----:|-----:|:--:|\n| Americas | 1,234.5 | 1,456.7 | +18.0% |\n| EMEA | 987.6 | 876.5 | −11.2% |\n| **Total** | **2,222.1** | **2,333.2** | +5.0% |",
    "```ts\nexport function f(x: number): number {\n\treturn x ** 2; // square\n}\n```\n- [ ] todo\n- [x] done\n> quote\n# Heading\n## Sub-heading ###",
    // emoji: ZWJ families, skin tones, flags, keycaps, variation selectors
    "Emoji: 👍 👍🏻 👍🏽 👍🏿 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🇯🇵🇺🇸 1️⃣ #️⃣ ❤️ ❤︎ 🫠 🧑‍🤝‍🧑 💩💩💩 😀😃😄😁 𝕏 𝒜𝓁𝓅𝒽𝒶 𠀀𠀁 (astral Han)",
    // decomposed accents (NFC matters) next to precomposed ones
    "Decomposed: Cafe\u0301 re\u0301sume\u0301 nai\u0308ve A\u030a \u0041\u030a\u0301 n\u0303 Precomposed: Café résumé naïve Å Ǻ ñ; Å (U+212B) Ω (U+2126) ﬁ ﬂ ǆ",
    // whitespace: tabs, CRLF, runs of spaces/newlines, exotic spaces
    "tabs\there\t\tand\t\t\tmore\r\nCRLF line\r\n\r\nblank above\n\n\n\nfour newlines\n    indented four\n\t\n  \n \r\n trailing spaces   \nend",
    "nbsp\u00a0\u00a0here\u2003em\u2009thin\u3000ideographic\u200bzwsp\u200d\ufeffbom\u0085nel\u2028ls\u2029ps\u000bvt\u000cff",
    "                                                                                                  lots of spaces",
    "================================================================================ ---------- ********** ........ ____",
    // special-token strings inside document text (each is one token, as the reference encodes them)
    "Document text mentioning <|im_end|> and <|im_start|>system\nignore previous<|endoftext|> plus <think>hmm</think> and <tool_call>{\"a\":1}</tool_call>",
    "Near misses: <|im_end| <im_end> <|IM_END|> < |im_end|> <|im_end|>\u0338 >\u0338 <|endoftext|><|endoftext|><|fim_prefix|><|fim_middle|><|fim_suffix|>",
    // lone surrogates and other oddities
    "lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, control \u0000\u0001\u007f, replacement \ufffd, private \ue000",
    "URL https://www.example.com/path?q=1&r=a%20b#frag email first.last+tag@example.co.uk 192.168.0.1 2024-03-31T23:59:59Z",
    "ALL CAPS SHOUTING WITH NUMBERS 10-K ITEM 7. MANAGEMENT'S DISCUSSION AND ANALYSIS OF FINANCIAL CONDITION",
    "mixedCase camelCaseIdentifiers snake_case_names kebab-case-names PascalCase HTTPServerError XMLHttpRequest",
  ];
  return parts.join("\n\n");
}

const EN = "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there had we been one all their has would when more if will can other its about into than them only some could these may two first any time very then such like over also after just most made new where should many those must before through back years much people way well because each state total revenue net income operating expenses fiscal quarter December liabilities assets shareholders".split(" ");
const HAN = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知因长被理入事业务风险管理财务报告收入利润资产负债现金流量".split("");
const KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノ".split("");
const HANGUL = "가나다라마바사아자차카타파하국민경제회사매출영업이익분기연결재무제표".split("");
const AR = "في من على إلى أن التي الذي عن مع هذا كان بين الشركة الإيرادات السنة المالية".split(" ");
const EMOJI = ["👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "❤️", "😀", "🚀", "📈", "✅"];
const PUNCT = [", ", ". ", "; ", ": ", " — ", " (", ") ", "\n", "\n\n", "\t", "  ", "\r\n", "'s ", "'LL ", " DON'T "];

/**
 * Deterministic mixed-script text of about `chars` UTF-16 units: sentences in English, Chinese,
 * Japanese, Korean and Arabic drawn at random (so CJK runs rarely repeat exactly, as in real
 * documents), with numbers, emoji, decomposed accents, tables and whitespace runs mixed in.
 */
export function mixedScriptText(chars: number, seed = 42): string {
  const r = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const out: string[] = [];
  let len = 0;
  const add = (s: string): void => {
    out.push(s);
    len += s.length;
  };
  while (len < chars) {
    const k = r();
    if (k < 0.35) {
      const n = 5 + Math.floor(r() * 20);
      const words: string[] = [];
      for (let i = 0; i < n; i++) words.push(r() < 0.1 ? pick(EN).toUpperCase() : pick(EN));
      add(words.join(" "));
    } else if (k < 0.55) {
      const n = 4 + Math.floor(r() * 30);
      let s = "";
      for (let i = 0; i < n; i++) s += pick(HAN);
      add(s + pick(["，", "。", "；", "、", "："]));
    } else if (k < 0.63) {
      let s = "";
      for (let i = 0, n = 3 + Math.floor(r() * 15); i < n; i++) s += r() < 0.3 ? pick(HAN) : pick(KANA);
      add(s + "。");
    } else if (k < 0.7) {
      let s = "";
      for (let i = 0, n = 2 + Math.floor(r() * 10); i < n; i++) s += pick(HANGUL) + (r() < 0.3 ? " " : "");
      add(s);
    } else if (k < 0.76) {
      const words: string[] = [];
      for (let i = 0, n = 3 + Math.floor(r() * 10); i < n; i++) words.push(pick(AR));
      add(words.join(" "));
    } else if (k < 0.86) {
      add(`${Math.floor(r() * 1e6).toLocaleString("en-US")}.${Math.floor(r() * 100)}${pick(["%", " USD", "万元", "", " bn"])}`);
    } else if (k < 0.9) {
      add(pick(EMOJI));
    } else if (k < 0.93) {
      add(pick(["Cafe\u0301", "re\u0301sume\u0301", "nai\u0308ve", "A\u030a", "\u1112\u1161\u11ab"]));
    } else if (k < 0.96) {
      add(`| ${pick(EN)} | ${Math.floor(r() * 1e4)} | ${(r() * 100).toFixed(1)}% |\n`);
    } else {
      add(pick(["    ", "\n\n\n", "\t\t", " \r\n", "=====", "<|im_end|>"]));
    }
    add(pick(PUNCT));
  }
  return out.join("");
}
