import type { Manifest } from "./manifest.ts";

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (n: number) => n.toLocaleString("en-US");
const usd = (n: number) => `$${n.toFixed(4)}`;

/**
 * runs/<jobId>/report.html: the manifest as a page a person can read, with links to each
 * item's answer and reasoning (relative, so they work in S3 and in the out/ mirror alike).
 * Self-contained: no scripts, no external assets.
 */
export function renderReport(m: Manifest): string {
  // Sampled jobs (issue 12) get an agreement column: k samples, agreement, the weakest fields, tool calls.
  const sampled = m.items.some((i) => i.samples !== undefined);
  const agreementCell = (i: Manifest["items"][number]) => {
    if (i.samples === undefined) return "<td></td>";
    const weak = (i.agreementByField ?? []).filter((f) => f.agreement < 1).map((f) => `${escape(f.path)} ${Math.round(f.agreement * 100)}%`);
    return `<td class="n">${Math.round((i.agreement ?? 1) * 100)}% of ${i.samples}${i.toolCalls ? ` · ${i.toolCalls} tool call${i.toolCalls === 1 ? "" : "s"}` : ""}` +
      `${weak.length ? `<br><small>${weak.join("<br>")}</small>` : ""}</td>`;
  };
  const rows = m.items
    .map((i) => {
      const link = (href: string | null, label: string) => (href ? `<a href="${escape(href)}">${label}</a>` : "");
      const docs = i.documents.map((d) => escape(d)).join("<br>");
      const notes = [
        i.answerTruncated || i.error?.kind === "output_truncated" ? `<span class="tag">truncated</span>` : "",
        i.repaired ? `<span class="tag">repaired</span>` : "",
      ].filter(Boolean).join(" ");
      return `<tr class="${i.status}"><td>${escape(i.id)}</td><td>${docs}</td><td>${i.status}${notes ? ` ${notes}` : ""}</td><td class="n">${i.attempts}</td>` +
        `<td class="n">${num(i.usage.inputTokens)}</td><td class="n">${num(i.usage.reasoningTokens)}</td><td class="n">${num(i.usage.outputTokens)}</td>` +
        `<td class="n">${num(i.usage.cachedTokens)}</td><td class="n">${usd(i.costUsd)}</td>${sampled ? agreementCell(i) : ""}` +
        `<td>${[link(i.answer, "answer"), link(i.invalidAnswer ?? null, "invalid answer"), link(i.reasoning, "reasoning")].filter(Boolean).join(" ")}</td><td>${i.error ? `${escape(i.error.kind)}: ${escape(i.error.message)}` : ""}</td></tr>`;
    })
    .join("\n");
  const c = m.counts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(m.job)} — ${escape(m.jobId)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f4f4f4}.n{text-align:right}.failed td{background:#fdecea}.skipped td{background:#f6f6f6}
.tag{font-size:12px;background:#fff3cd;border:1px solid #e0c060;border-radius:3px;padding:0 4px}.warn{color:#8a5a00}
</style></head><body>
<h1>${escape(m.job)}</h1>
<p>Run <code>${escape(m.jobId)}</code> on <code>${escape(m.model)}</code>: <strong>${m.status}</strong>.
${c.succeeded} succeeded, ${c.failed} failed, ${c.skipped} skipped of ${c.total}.${
    m.truncatedItems ? ` <strong class="warn">${m.truncatedItems} item(s) hit the output cap (maxOutputTokens): their answers are truncated.</strong>` : ""
  }
Started ${escape(m.startedAt)}${m.finishedAt ? `, finished ${escape(m.finishedAt)}` : ""}.</p>
<p>Tokens: ${num(m.usage.inputTokens)} in (${num(m.usage.cachedTokens)} from the cache), ${num(m.usage.outputTokens)} out
(${num(m.usage.reasoningTokens)} of them reasoning). Cost ${usd(m.costUsd)}; the cache saved ${usd(m.cacheSavingsUsd)}.</p>
<table><thead><tr><th>item</th><th>documents</th><th>status</th><th>attempts</th><th>input</th><th>reasoning</th><th>output</th><th>cached</th><th>cost</th>${sampled ? "<th>agreement</th>" : ""}<th>files</th><th>error</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}
