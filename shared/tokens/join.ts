/**
 * Exact token count of a concatenation whose long texts were already counted: a prompt is a
 * document's text (counted once, when the worker read it) inside a few lines of framing, and
 * counting the whole prompt again would cost as much as counting the document.
 *
 * Counting does not add up over an arbitrary split: the pre-tokenizer can join a `>` with the
 * newlines after it, or whitespace across a boundary. It does add up at a *cut*, a position no
 * pre-token, added token or NFC composition can span:
 *
 *   - after `\r` or `\n`, before a character that is not whitespace (a newline ends every piece
 *     that holds it, and no piece starts with a newline and goes on to text); or
 *   - after an ASCII letter, before a space (a letter run ends at the space, which leads the next piece).
 *
 * No added token holds a newline or a space, and a newline or a space composes with nothing under
 * NFC, so count(s) = count(s[0, p)) + count(s[p, ...)) at a cut p. A known text's count is then
 * reused between its first and last cut, and only the framing with the few characters before the
 * first cut and after the last one is counted. test/tokens-join.test.ts checks it against whole counts.
 */
import { countTokens, REPLY_START, TURN_END, turnStart } from "./index.ts";

/** A text whose exact token count (countTokens(text)) is already known. */
export interface CountedText {
  text: string;
  tokens: number;
}

const NL = 0x0a;
const CR = 0x0d;
const isNewline = (c: number) => c === NL || c === CR;
const isAsciiLetter = (c: number) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
const WHITESPACE = /\s/;
const isWhitespace = (c: number) => (c < 0x80 ? c === 0x20 || (c >= 0x09 && c <= 0x0d) : WHITESPACE.test(String.fromCharCode(c)));

/** Whether position p (0 < p < s.length) of s is a cut. */
function cutAt(s: string, p: number): boolean {
  const before = s.charCodeAt(p - 1);
  const at = s.charCodeAt(p);
  return (isNewline(before) && !isWhitespace(at)) || (at === 0x20 && isAsciiLetter(before));
}

/** The first cut of text, 0 included when what comes before it ends in a newline; -1 when none. */
function firstCut(text: string, afterNewline: boolean): number {
  if (text.length === 0) return -1;
  if (afterNewline && !isWhitespace(text.charCodeAt(0))) return 0;
  for (let p = 1; p < text.length; p++) if (cutAt(text, p)) return p;
  return -1;
}

/** The last cut of text at or after `from` (from itself is a cut); text.length excluded. */
function lastCut(text: string, from: number): number {
  for (let p = text.length - 1; p > from; p--) if (cutAt(text, p)) return p;
  return from;
}

/** Exact countTokens of the parts joined, counting only the framing around each known text's cuts. */
export function countJoined(parts: readonly (string | CountedText)[]): number {
  let total = 0;
  // What is not counted yet: framing, and the tail of the last known text after its last cut.
  let open = "";
  for (const part of parts) {
    if (typeof part === "string") {
      open += part;
      continue;
    }
    const { text, tokens } = part;
    const p = firstCut(text, open.length === 0 || isNewline(open.charCodeAt(open.length - 1)));
    if (p < 0) {
      open += text;
      continue;
    }
    const q = lastCut(text, p);
    const head = text.slice(0, p);
    const tail = text.slice(q);
    // text = head + middle + tail, split at cuts: the middle's count is what the known count leaves.
    total += countTokens(open + head) + (tokens - countTokens(head) - countTokens(tail));
    open = tail;
  }
  return total + countTokens(open);
}

/** countChatTokens for messages given in parts: the same ChatML framing, each known text's count reused. */
export function countChatJoined(messages: readonly { role: string; parts: readonly (string | CountedText)[] }[]): number {
  return messages.reduce((n, m) => n + countJoined([turnStart(m.role), ...m.parts, TURN_END]), countTokens(REPLY_START));
}
