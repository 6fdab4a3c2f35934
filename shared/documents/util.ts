/** Small helpers shared by the format loaders. */
import { DocumentError, type ErrorCode } from "../errors.ts";

/** A DocumentError whose message always starts with the file name. */
export function docError(code: ErrorCode, name: string, message: string, cause?: unknown): DocumentError {
  return new DocumentError(code, `${name}: ${message}`, cause === undefined ? {} : { cause });
}

/**
 * A document whose text cannot fit the model, known from a lower bound on its tokens before it
 * was extracted or counted in full (kind input_too_long, as the call would have failed).
 */
export function tooManyTokens(name: string, atLeast: number, limit: number): DocumentError {
  return docError(
    "input_too_long",
    name,
    `its text has at least ${atLeast} tokens (a lower bound, found before extracting it in full), over the ${limit} tokens the model can take as input; split the document, or set truncate: middle to cut its middle`,
  );
}

/** The line that starts each PDF page's text: `--- page N ---` (N is the 1-based page number). */
export const pageMarker = (n: number): string => `--- page ${n} ---`;

/** The one line that stands for the empty pages first..last (two or more): `--- pages 2–2001: no text ---`. */
export const emptyPagesMarker = (first: number, last: number): string => `--- pages ${first}–${last}: no text ---`;

/** "1.5 MiB (1572864 bytes)" */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${n} bytes`;
  const shown = v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1);
  return `${shown} ${units[u]} (${n} bytes)`;
}

/** Unicode code points in a string (what `chars` reports). */
export function countChars(s: string): number {
  let n = s.length;
  if (!SURROGATE.test(s)) return n;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/**
 * Final clean-up applied to every loader's text: LF line endings, no trailing spaces on lines,
 * at most two consecutive blank lines, no leading blank lines, exactly one final newline
 * (empty string stays empty).
 */
export function finishText(s: string, opts: { tidy?: boolean } = {}): string {
  // The same rules as /[ \t\u00a0]+$/gm and /\s+$/, written so a 1 MB text takes one fast pass each.
  // `tidy`: the caller knows no line rule applies (text.ts's tidyBytes); only the ends are trimmed.
  const lines = opts.tidy
    ? s
    : (s.includes("\r") ? s.replace(/\r\n?/g, "\n") : s).replace(/[ \t\u00a0]+(?=[\n\u2028\u2029]|$)/g, "").replace(/\n{4,}/g, "\n\n\n");
  const t = lines.replace(/^\n+/, "");
  // A text that already ends in one line feed after the last word is kept as it is: trimming the
  // line feed and adding it back would copy the whole text.
  if (t.length > 1 && t.charCodeAt(t.length - 1) === 10 && /\S/.test(t[t.length - 2]!)) return t;
  const trimmed = t.trimEnd();
  return trimmed.length === 0 ? "" : trimmed + "\n";
}

/** True when the text holds at least one non-whitespace character. */
export function hasText(s: string): boolean {
  return /\S/.test(s);
}

/** Remove C0 control characters other than tab/newline/CR (they only confuse the model). */
export function stripControls(s: string): string {
  // Testing first is a fast scan; most texts have none to remove.
  return CONTROLS.test(s) ? s.replace(CONTROLS_ALL, "") : s;
}
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const CONTROLS_ALL = new RegExp(CONTROLS.source, "g");
const SURROGATE = /[\ud800-\udfff]/;
