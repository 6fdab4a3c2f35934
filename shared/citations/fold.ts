/**
 * Folding: what a quote and the document's text are both reduced to before they are compared, so
 * that a quote copied faithfully matches even where the model (or the PDF's text layer) wrote it
 * differently. Folded alike:
 *
 * - compatibility forms (NFKC: ligatures such as "ﬁ", full-width letters and digits, no-break spaces);
 * - case;
 * - quote marks (straight, curly, guillemets, primes, backtick) all become `'`;
 * - dashes and minus signs (hyphen, en and em dash, U+2212, ...) all become `-`;
 * - thousands separators: a comma, apostrophe or space between a digit and exactly three digits
 *   goes ("1,577", "1'577" and "1 577" are all "1577");
 * - whitespace and table rules: every space, line break, `|` cell border and `<br>` (a line break
 *   inside a workbook cell) goes, so the column spacing of a PDF table or the cells of a workbook
 *   row do not decide a match.
 */

const QUOTES = /['"`´‘’‚‛“”„‟«»‹›′″]/g;
const DASHES = /[‐‑‒–—―−⁃﹘﹣－]/g;
/** A separator between a digit and a group of exactly three digits (evaluated after quotes became `'`). */
const THOUSANDS = /(?<=\d)[,' \u00a0\u2009\u202f](?=\d{3}(?!\d))/g;
const IGNORED = /(?:[\s|]|<br\s*\/?>)+/g;

export function fold(text: string): string {
  return text.normalize("NFKC").toLowerCase().replace(QUOTES, "'").replace(DASHES, "-").replace(THOUSANDS, "").replace(IGNORED, "");
}
