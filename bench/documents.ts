/** Deterministic markdown documents of a target size in tokens, for the fleet benchmarks. */
import { countTokens } from "../shared/tokens/index.ts";

/** A small seeded generator (LCG): the same documents on every run. */
export function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);
}

const paragraph = (doc: number, i: number) =>
  `Note ${doc}.${i}. Revenue in segment ${(doc + i) % 17} rose ${(i * 7 + doc) % 23}.${i % 10}% to $${1000 + i * 13 + doc} million; operating margin ${(10 + ((i + doc) % 9)).toFixed(1)}% ` +
  `against ${(9 + (i % 7)).toFixed(1)}% a year earlier, as pricing offset input costs in region ${i % 5} and the backlog grew by ${(i * 11 + doc) % 97} units.\n\n`;
/** Tokens per paragraph, measured once. */
const TOKENS_PER_PARAGRAPH = countTokens(Array.from({ length: 200 }, (_, i) => paragraph(7, i)).join("")) / 200;

export function documentOf(doc: number, targetTokens: number): string {
  const n = Math.max(1, Math.round(targetTokens / TOKENS_PER_PARAGRAPH));
  let text = `# Report ${doc}\n\n`;
  for (let i = 0; i < n; i++) {
    if (i % 40 === 0) text += `## Section ${i / 40 + 1}\n\n`;
    text += paragraph(doc, i);
  }
  return text;
}
