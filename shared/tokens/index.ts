/**
 * Exact Qwen3 token counting (the same numbers as the model's Hugging Face tokenizer.json).
 *
 * Synchronous; the tables load lazily on first use (~40 ms, from the committed
 * `qwen3-data.ts`; no JSON, no network, no file system) or eagerly with `warmTokenizer()`.
 *
 * Added/special-token strings inside text (`<|im_end|>`, `<|endoftext|>`, `<think>`, …) are
 * counted as the reference `encode` does by default: each occurrence is ONE token (the tokenizer
 * splits them out before anything else), not the ~5 tokens of its characters.
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

/**
 * Prompt tokens of a chat as the API counts them (ChatML): each message
 * `<|im_start|>{role}\n{content}<|im_end|>\n`, then `<|im_start|>assistant\n`.
 * Counted on the framed text itself (not as content + a constant), because the `\n` after the
 * role can merge with whitespace at the start of the content.
 */
export function countChatTokens(messages: readonly ChatMessage[]): number {
  const e = getEngine();
  let n = e.count("<|im_start|>assistant\n");
  for (const m of messages) n += e.count(`<|im_start|>${m.role}\n${m.content}<|im_end|>\n`);
  return n;
}
