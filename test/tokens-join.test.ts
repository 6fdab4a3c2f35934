import { describe, expect, it } from "vitest";
import { tortureText } from "../shared/tokens/fixtures.ts";
import { countTokens } from "../shared/tokens/index.ts";
import { countJoined, type CountedText } from "../shared/tokens/join.ts";
import { mulberry32 } from "../shared/random.ts";

/** Texts built to put every kind of character next to a cut: newlines, spaces, symbols, marks, added tokens. */
function randomText(r: () => number, length: number): string {
  const palette = [
    "word", "Revenue", "a", "I", "x", "é", "中文", "ſ", "0", "42", "½", " ", " ", "  ", "\t", "\n", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000",
    ">", "<", "</document>", "'s", "'", ".", "|", "-", "#", "```", "\u0301", "e\u0301", "\ufeff", "<|im_end|>", "<think>", "😀", "\ud800",
  ];
  let s = "";
  while (s.length < length) s += palette[Math.floor(r() * palette.length)];
  return s;
}

const counted = (text: string): CountedText => ({ text, tokens: countTokens(text) });

describe("countJoined: a known text's count reused inside framing", () => {
  it("equals counting the whole string, on 3,000 random texts between random framings", () => {
    const r = mulberry32(7);
    const framings = ["", "\n", ">\n", '<document boundary="b-1" index="1" source="a.md">\n', "\n</document>", "\n\n", " ", "x", ":", "<|im_start|>user\n", "<|im_end|>\n", "\r", "'"];
    const pick = () => framings[Math.floor(r() * framings.length)]!;
    for (let i = 0; i < 3000; i++) {
      const parts: (string | CountedText)[] = [];
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) parts.push(pick(), counted(randomText(r, Math.floor(r() * 80))), pick());
      const whole = parts.map((p) => (typeof p === "string" ? p : p.text)).join("");
      expect({ whole, n: countJoined(parts) }).toEqual({ whole, n: countTokens(whole) });
    }
  });

  it("equals counting the whole prompt for real text (the tokenizer's torture text, a long report)", () => {
    const report = Array.from({ length: 400 }, (_, i) => `## Note ${i}\n\nRevenue grew ${i}.5% in the quarter; the company's margin was ${i % 30}%.\n`).join("\n");
    for (const text of [tortureText(), report, `\n\n  ${report}  \n\n`, report.replace(/\n/g, " ")]) {
      const parts = ["<|im_start|>user\n", '<document boundary="b-0" index="1" source="r.md">\n', counted(text), '\n</document boundary="b-0">', "\n\nList the figures.", "<|im_end|>\n"];
      const whole = parts.map((p) => (typeof p === "string" ? p : p.text)).join("");
      expect(countJoined(parts)).toBe(countTokens(whole));
    }
  });

  it("uses the known count: a wrong one shows in the total (so the caller's count is what is reused)", () => {
    const text = "First line of the document.\nSecond line, the middle.\nLast line.\n";
    const right = countJoined(["<doc>\n", counted(text), "\n</doc>"]);
    expect(countJoined(["<doc>\n", { text, tokens: countTokens(text) + 5 }, "\n</doc>"])).toBe(right + 5);
  });
});

describe("planCall with the documents' counts known counts the same prompt as without", () => {
  it("for one document, questions, packed documents and an explicit cache marker", async () => {
    const { readFileSync } = await import("node:fs");
    const { planCall } = await import("../shared/model/plan.ts");
    const { getModel, loadCatalog } = await import("../shared/model/catalog.ts");
    const { parseJobText } = await import("../shared/job/load.ts");
    const { countChatTokens } = await import("../shared/tokens/index.ts");
    const { messageText } = await import("../shared/model/prompt.ts");
    const model = getModel(loadCatalog(), "qwen3-max");
    const csv = readFileSync(new URL("./corpus/files/world-gdp.csv", import.meta.url), "utf8").slice(0, 200_000);
    const docs = [
      { source: "world-gdp.csv", text: csv },
      { source: 'odd "name"\n.md', text: "\n\n  starts with blanks\nand ends with a symbol >" },
      { source: "t.md", text: tortureText() },
    ];
    const specs = [
      "prompt: List the figures.\n",
      "questions:\n  - { id: q1, ask: What grew? }\n  - { id: q2, ask: What fell? }\n",
      "prompt: Compare.\npacking: packed\ncache: explicit\n",
    ];
    for (const extra of specs) {
      const spec = parseJobText(`name: j\ndocuments:\n  - path: x\n${extra}`, "j.yaml");
      for (const set of [docs.slice(0, 1), docs]) {
        const plain = planCall(spec, model, set);
        const known = planCall(spec, model, set.map((d) => ({ ...d, tokens: countTokens(d.text) })));
        const wire = countChatTokens(known.messages.map((m) => ({ role: m.role, content: messageText(m) })));
        expect({ extra, docs: set.length, inputTokens: known.inputTokens, prefixTokens: known.prefixTokens }).toEqual({ extra, docs: set.length, inputTokens: plain.inputTokens, prefixTokens: plain.prefixTokens });
        expect(known.inputTokens).toBe(wire);
        expect(known.messages).toEqual(plain.messages);
      }
    }
  });
});
