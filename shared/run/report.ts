import { formatCost } from "../model/catalog.ts";
import type { Manifest, ManifestItem } from "./manifest.ts";
import { answerColumns } from "./flatten.ts";
import { escapeHtml as escape, renderMarkdown } from "./markdown.ts";
import type { ItemContent, ReportContent } from "./report-content.ts";
import { CITATION_CSS, citationList, markCitations } from "./report-citations.ts";
const num = (n: number) => n.toLocaleString("en-US");

/**
 * runs/<jobId>/report.html: the manifest as a page a person can read, with links to each
 * item's answer and reasoning (relative, so they work in S3 and in the out/ mirror alike), and,
 * with `content`, what was asked, each answer rendered from Markdown with its reasoning trace
 * folded under it, and for JSON jobs one table of every item's answer fields.
 * Self-contained and inert: no scripts, no external assets, and a Content-Security-Policy that
 * lets none run; everything a document or the model wrote is escaped (markdown.ts).
 */
export function renderReport(m: Manifest, content?: ReportContent): string {
  const money = (n: number) => escape(formatCost(n, m.currency ?? "USD"));
  // Sampled jobs get an agreement column: k samples, agreement, the weakest fields, tool calls.
  const sampled = m.items.some((i) => i.samples !== undefined);
  const agreementCell = (i: Manifest["items"][number]) => {
    if (i.samples === undefined) return "<td></td>";
    const weak = (i.agreementByField ?? []).filter((f) => f.agreement < 1).map((f) => `${escape(f.path)} ${Math.round(f.agreement * 100)}%`);
    return `<td class="n">${Math.round((i.agreement ?? 1) * 100)}% of ${i.samples}${i.toolCalls ? ` · ${i.toolCalls} tool call${i.toolCalls === 1 ? "" : "s"}` : ""}` +
      `${weak.length ? `<br><small>${weak.join("<br>")}</small>` : ""}</td>`;
  };
  // citations: verify: a column with each item's citation score.
  const cited = m.items.some((i) => i.citationScore !== undefined);
  const rows = m.items
    .map((i) => {
      const link = (href: string | null, label: string) => (href ? `<a href="${escape(href)}">${label}</a>` : "");
      const docs = i.documents.map((d) => escape(d)).join("<br>");
      const notes = [
        i.answerTruncated || i.error?.kind === "output_truncated" ? `<span class="tag">truncated</span>` : "",
        i.repaired ? `<span class="tag">repaired</span>` : "",
      ].filter(Boolean).join(" ");
      return `<tr class="${i.status}"><td>${content?.items.has(i.id) ? `<a href="#item-${escape(i.id)}">${escape(i.id)}</a>` : escape(i.id)}</td><td>${docs}</td><td>${i.status}${notes ? ` ${notes}` : ""}</td><td class="n">${i.attempts}</td>` +
        `<td class="n">${num(i.usage.inputTokens)}</td><td class="n">${num(i.usage.reasoningTokens)}</td><td class="n">${num(i.usage.outputTokens)}</td>` +
        `<td class="n">${num(i.usage.cachedTokens)}</td><td class="n">${money(i.cost)}</td>${sampled ? agreementCell(i) : ""}` +
        `${cited ? `<td class="n">${i.citationScore ?? ""}</td>` : ""}` +
        `<td>${[link(i.answer, "answer"), link(i.invalidAnswer ?? null, "invalid answer"), link(i.reasoning, "reasoning")].filter(Boolean).join(" ")}</td><td>${i.error ? `${escape(i.error.kind)}: ${escape(i.error.message)}` : ""}</td></tr>`;
    })
    .join("\n");
  const c = m.counts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escape(m.job)} — ${escape(m.jobId)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f4f4f4}.n{text-align:right}.failed td{background:#fdecea}.skipped td{background:#f6f6f6}
.tag{font-size:12px;background:#fff3cd;border:1px solid #e0c060;border-radius:3px;padding:0 4px}.warn{color:#8a5a00}
section.item{border-top:1px solid #ddd;margin-top:1.5em;padding-top:.5em}.answer{max-width:60em}.answer table td,.answer table th{font-size:13px}
details pre,.answer pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;max-width:60em}.q{color:#444}.note{color:#666;font-size:13px}
${CITATION_CSS}
.plots{display:flex;flex-wrap:wrap;gap:8px}.plots svg{border:1px solid #ddd}
</style></head><body>
<h1>${escape(m.job)}</h1>
<p>Run <code>${escape(m.jobId)}</code> on <code>${escape(m.model)}</code>: <strong>${m.status}</strong>.
${c.succeeded} succeeded, ${c.failed} failed, ${c.skipped} skipped of ${c.total}.${
    m.truncatedItems ? ` <strong class="warn">${m.truncatedItems} item(s) hit the output cap (maxOutputTokens): their answers are truncated.</strong>` : ""
  }
Started ${escape(m.startedAt)}${m.finishedAt ? `, finished ${escape(m.finishedAt)}` : ""}.</p>
<p>Tokens: ${num(m.usage.inputTokens)} in (${num(m.usage.cachedTokens)} from the cache), ${num(m.usage.outputTokens)} out
(${num(m.usage.reasoningTokens)} of them reasoning). Cost ${money(m.cost)} (${escape(m.currency)}); the cache saved ${money(m.cacheSavings)}.</p>
<table><thead><tr><th>item</th><th>documents</th><th>status</th><th>attempts</th><th>input</th><th>reasoning</th><th>output</th><th>cached</th><th>cost</th>${sampled ? "<th>agreement</th>" : ""}${cited ? "<th>citations</th>" : ""}<th>files</th><th>error</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${content?.plots?.length ? `<h2>Plots</h2>\n<div class="plots">${content.plots.join("\n")}</div>` : ""}
${content ? renderContent(m, content) : ""}
</body></html>
`;
}

/** What was asked, then the answers: one table of fields for JSON jobs, one section per item for text. */
function renderContent(m: Manifest, c: ReportContent): string {
  const parts: string[] = [];
  if (c.asked && "questions" in c.asked) {
    parts.push(`<h2>Questions</h2>\n<dl>${c.asked.questions.map((q) => `<dt><code>${escape(q.id)}</code></dt><dd class="q">${escape(q.ask)}</dd>`).join("")}</dl>`);
  } else if (c.asked) {
    parts.push(`<h2>Prompt</h2>\n<p class="q">${escape(c.asked.prompt)}</p>`);
  }
  const shown = m.items.filter((i) => c.items.has(i.id));
  if (c.json) {
    const rows = shown.map((i) => ({ item: i, fields: c.items.get(i.id)!.fields }));
    const columns = answerColumns(rows.flatMap((r) => (r.fields ? [r.fields] : [])));
    parts.push(
      `<h2>Answers</h2>\n<table class="answers"><thead><tr><th>item</th><th>status</th>${columns.map((k) => `<th>${escape(k.replace(/^answer\./, ""))}</th>`).join("")}</tr></thead><tbody>\n` +
        rows
          .map(({ item, fields }) => `<tr class="${item.status}"><td><a href="#item-${escape(item.id)}">${escape(item.id)}</a></td><td>${item.status}</td>${columns.map((k) => `<td>${cell(fields?.get(k))}</td>`).join("")}</tr>`)
          .join("\n") +
        "\n</tbody></table>",
    );
  }
  parts.push(shown.map((i) => renderItem(i, c.items.get(i.id)!)).join("\n"));
  if (c.notInlined > 0) parts.push(`<p class="note">${num(c.notInlined)} more item(s) are listed in the table above; open their files for the answers.</p>`);
  return parts.join("\n");
}

const cell = (v: unknown) => (v === undefined || v === null ? "" : typeof v === "number" ? num(v) : escape(String(v)));

function renderItem(i: ManifestItem, c: ItemContent): string {
  const out = [`<section class="item" id="item-${escape(i.id)}"><h3>${escape(i.id)} <span class="note">${i.status}</span></h3>`];
  if (i.documents.length) out.push(`<p class="note">${i.documents.map(escape).join("<br>")}</p>`);
  if (c.question !== undefined) out.push(`<p class="q">${escape(c.question)}</p>`);
  if (i.error) out.push(`<p class="warn">${escape(i.error.kind)}: ${escape(i.error.message)}</p>`);
  if (c.answer !== undefined) {
    const html = renderMarkdown(c.answer);
    out.push(`<div class="answer">${c.citations ? markCitations(html, c.answer, i.documents, c.citations.result, i.id) : html}</div>`);
    if (c.answerCut && i.answer) out.push(`<p class="note">The answer is cut here; <a href="${escape(i.answer)}">the whole answer</a>.</p>`);
  }
  if (c.citations) out.push(citationList(c.citations.result, c.citations.places, i.id));
  if (c.reasoning !== undefined && c.reasoning.trim() !== "") {
    const more = c.reasoningCut && i.reasoning ? ` <a href="${escape(i.reasoning)}">(cut; the whole trace)</a>` : "";
    out.push(`<details><summary>Reasoning trace (${num(c.reasoning.length)} characters)${more}</summary><pre>${escape(c.reasoning)}</pre></details>`);
  }
  out.push("</section>");
  return out.join("\n");
}
