/**
 * report.html's view of `citations: verify`: each citation in the rendered answer marked as held,
 * on the wrong page (with the page it is on) or not found, and under the answer the list of
 * citations, each with the text of its page folded in a <details> (shown on demand, no script).
 * Everything the model or a document wrote is escaped.
 */
import { parseCitations, type CitationsResult } from "../citations/index.ts";
import { placeKey, shownPlace, type CitedPlace } from "../citations/gate.ts";
import { escapeHtml as escape } from "./markdown.ts";

type Checked = CitationsResult["list"][number];

export const CITATION_CSS =
  ".cite-ok{color:#1a7f37}.cite-wrong{color:#9a6700}.cite-missing{color:#cf222e}mark.cite{background:none;border-bottom:2px solid currentColor;color:inherit}" +
  "mark.cite.cite-ok{border-color:#1a7f37}mark.cite.cite-wrong{border-color:#d4a72c}mark.cite.cite-missing{border-color:#cf222e}" +
  "a.cite-tag{font-size:12px;text-decoration:none;margin-left:2px}ol.citations li{margin:.3em 0}";

const where = (p: { page: number | null; sheet: string | null }) => (p.page !== null ? `p. ${p.page}` : p.sheet !== null ? `sheet ${p.sheet}` : "the document");

function tag(c: Checked): { cls: string; short: string; long: string } {
  if (c.status === "supported") return { cls: "cite-ok", short: "✓ held", long: `held: the quote is on ${where(c)}` };
  if (c.status === "wrong_page") {
    const on = c.foundOn.map((f) => (typeof f === "number" ? `p. ${f}` : `sheet ${f}`)).join(", ");
    return { cls: "cite-wrong", short: `≠ on ${on}`, long: `wrong page: cited ${where(c)}, the quote is on ${on}` };
  }
  return { cls: "cite-missing", short: "✗ not found", long: "not found: the document does not contain this quote" };
}

const anchor = (itemId: string, k: number) => `cite-${escape(itemId)}-${k + 1}`;

/** The escaping markdown-it applies to text, so a citation's text can be found in the rendered answer. */
const asRendered = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/**
 * Marks each citation of a text answer where it appears in its rendered HTML (a citation the
 * Markdown changed, say with emphasis inside the quote, is left unmarked; the list still has it).
 */
export function markCitations(html: string, answer: string, documents: string[], result: CitationsResult, itemId: string): string {
  const parsed = parseCitations(answer, documents);
  if (parsed.length !== result.list.length) return html;
  let out = "";
  let from = 0;
  parsed.forEach((p, k) => {
    const needle = asRendered(p.raw);
    const at = html.indexOf(needle, from);
    if (at < 0) return;
    const t = tag(result.list[k]!);
    out += html.slice(from, at) + `<mark class="cite ${t.cls}" title="${escape(t.long)}">${needle}</mark><a class="cite-tag ${t.cls}" href="#${anchor(itemId, k)}" title="${escape(t.long)}">${escape(t.short)}</a>`;
    from = at + needle.length;
  });
  return out + html.slice(from);
}

/** The list of an item's citations, each with the text of the page it is shown with. */
export function citationList(result: CitationsResult, places: CitedPlace[], itemId: string): string {
  const byKey = new Map(places.map((p) => [placeKey(p.document, p), p]));
  const items = result.list.map((c, k) => {
    const t = tag(c);
    const shown = shownPlace(c);
    const place = byKey.get(placeKey(c.document, shown)) ?? byKey.get(placeKey(c.document, { page: null, sheet: null }));
    const text = place
      ? `<details><summary>Text of ${escape(where(place))}${c.status === "not_found" ? " (the place cited)" : ""}</summary><pre>${escape(place.text)}</pre></details>`
      : "";
    return `<li id="${anchor(itemId, k)}" class="${t.cls}"><strong>${escape(t.short)}</strong> ${escape(where(c))}: “${escape(c.quote)}” <span class="note">${escape(c.document)}</span>${text}</li>`;
  });
  const r = result;
  const head = `Citations: ${r.supported} of ${r.total} held, ${r.wrongPage} on another page, ${r.notFound} not found (score ${r.score})`;
  return `<details class="citations" open><summary>${escape(head)}</summary>${items.length ? `<ol class="citations">${items.join("")}</ol>` : `<p class="note">The answer cites nothing.</p>`}</details>`;
}
