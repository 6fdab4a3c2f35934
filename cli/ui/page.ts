/**
 * The pages `longdoc ui` serves: two HTML shells, one style sheet and one small script, all from
 * this process (no CDN, no build step). The shells carry no run data but the job id (escaped);
 * the script fetches JSON from the same server and builds the page with DOM calls, putting every
 * value a document or the model wrote into the page as text (textContent), never as HTML.
 */
import { escapeHtml as escape } from "../../shared/run/markdown.ts";

/** No inline script or style, nothing from elsewhere: only this server's script, sheet, images and JSON. */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const shell = (title: string, body: string, data: Record<string, string>) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head><body ${Object.entries(data).map(([k, v]) => `data-${k}="${escape(v)}"`).join(" ")}>
<header><a href="/">longdoc</a> <span class="note">read-only view of ${escape(data.source ?? "the runs")}</span></header>
<noscript><p>This page needs JavaScript (served by this CLI, nothing from elsewhere). <code>longdoc status</code> and <code>longdoc results</code> show the same in a terminal.</p></noscript>
${body}
</body></html>
`;

export function jobsPage(o: { source: string; pollMs: number }): string {
  return shell(
    "longdoc jobs",
    `<main><h1>Jobs</h1><p id="summary" class="note">Loading…</p>
<table id="jobs"><thead><tr><th>job</th><th>name</th><th>status</th><th>succeeded</th><th>failed</th><th>skipped</th><th>total</th><th>cost</th><th>started</th><th>duration</th></tr></thead><tbody></tbody></table></main>`,
    { page: "jobs", source: o.source, poll: String(o.pollMs) },
  );
}

export function jobPage(o: { jobId: string; source: string; pollMs: number }): string {
  return shell(
    `longdoc ${o.jobId}`,
    `<main><h1 id="title"></h1>
<p id="status" class="note">Loading…</p>
<progress id="bar" max="1" value="0"></progress>
<table id="counts"><thead><tr><th>succeeded</th><th>failed</th><th>skipped</th><th>queued</th><th>retrying</th><th>total</th><th>input tokens</th><th>output tokens</th><th>cost</th><th>elapsed</th><th>ETA</th></tr></thead><tbody><tr></tr></tbody></table>
<h2>Plots</h2><div id="plots"></div>
<h2>Errors</h2><div id="errors"><p class="note">None.</p></div>
<h2>Items</h2>
<p><label>Status <select id="filter"><option value="">all</option><option>succeeded</option><option>failed</option><option>skipped</option><option>queued</option><option>retrying</option></select></label> <span id="shown" class="note"></span></p>
<table id="items"><thead><tr><th>item</th><th>documents</th><th>status</th><th>attempts</th><th>deliveries</th><th>input</th><th>output</th><th>reasoning</th><th>cost</th><th>error</th><th>agreement</th><th>citations</th><th>duration</th></tr></thead><tbody></tbody></table>
<section id="item" hidden></section></main>`,
    { page: "job", job: o.jobId, source: o.source, poll: String(o.pollMs) },
  );
}

export const APP_CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1f2328}header{margin-bottom:1em}header a{font-weight:bold;text-decoration:none}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;vertical-align:top;text-align:left}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.note{color:#656d76;font-size:13px}progress{width:32em;height:1em}
tr.failed td{background:#fdecea}tr.skipped td{background:#f6f6f6}tr.queued td{color:#656d76}
#plots{display:flex;flex-wrap:wrap;gap:8px}#plots img{border:1px solid #d0d7de}
pre{white-space:pre-wrap;background:#f6f8fa;padding:8px;max-width:70em;overflow-wrap:anywhere}
button.link{background:none;border:0;padding:0;color:#0969da;cursor:pointer;font:inherit;text-decoration:underline}
section#item{border-top:2px solid #d0d7de;margin-top:1.5em;padding-top:.5em}.error-kind{font-weight:bold}
.status-running{color:#9a6700}.status-succeeded{color:#1a7f37}.status-failed,.status-halted,.status-interrupted{color:#cf222e}.status-partial{color:#9a6700}
`;

/**
 * The page's script. Plain ES2020, no framework. `el` builds elements and takes strings only as
 * text nodes, so a name or an answer holding markup shows as that markup, inert.
 */
export const APP_JS = String.raw`"use strict";
(function () {
  const body = document.body;
  const POLL = Number(body.dataset.poll) || 1000;
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "onclick") e.addEventListener("click", v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const num = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));
  const money = (n, cur) => (Number(n) || 0).toFixed(4) + " " + (cur || "");
  function dur(ms) {
    if (ms === null || ms === undefined) return "?";
    const s = Math.round(ms / 1000);
    if (s < 60) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }
  const cell = (v, cls) => el("td", cls ? { class: cls } : {}, v);
  async function getJson(url) {
    const r = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
    return body;
  }
  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  // The jobs list.
  async function jobs() {
    const summary = document.getElementById("summary");
    try {
      const data = await getJson("/api/jobs");
      const rows = data.jobs.map((j) => {
        const took = j.finishedAt ? Date.parse(j.finishedAt) - Date.parse(j.startedAt) : Date.now() - Date.parse(j.startedAt);
        return el("tr", { class: j.status },
          el("td", {}, el("a", { href: "/jobs/" + encodeURIComponent(j.jobId) }, j.jobId)),
          cell(j.job), cell(j.status, "status-" + j.status), cell(num(j.counts.succeeded), "n"), cell(num(j.counts.failed), "n"),
          cell(num(j.counts.skipped), "n"), cell(num(j.counts.total), "n"), cell(money(j.cost, j.currency), "n"), cell(j.startedAt), cell(dur(took), "n"));
      });
      replaceRows(document.querySelector("#jobs tbody"), rows);
      summary.textContent = data.jobs.length ? data.jobs.length + " job(s), newest first" : "No jobs yet: run one with 'longdoc run <job.yaml>'.";
    } catch (e) {
      summary.textContent = "Cannot read the jobs: " + e.message;
    }
    setTimeout(jobs, Math.max(POLL, 3000));
  }

  // One job.
  const jobId = body.dataset.job;
  let last = null;
  let plotVersion = null;
  let opened = null;
  function renderJob(v) {
    const p = v.progress;
    document.title = "longdoc " + p.jobId + " (" + p.status + ")";
    document.getElementById("title").textContent = p.job;
    const status = document.getElementById("status");
    status.replaceChildren("Run ", el("code", {}, p.jobId), " on ", el("code", {}, p.model), ": ", el("strong", { class: "status-" + p.status, id: "run-status" }, p.status),
      (p.halted ? " (halted)" : "") + (p.cancelled ? " (cancelled)" : "") + ". Started " + p.startedAt + (p.finishedAt ? ", finished " + p.finishedAt : "") + ".");
    const c = p.counts;
    const done = c.succeeded + c.failed + c.skipped;
    const bar = document.getElementById("bar");
    bar.max = Math.max(1, c.total);
    bar.value = done;
    const u = p.usage;
    document.querySelector("#counts tbody").replaceChildren(el("tr", {},
      cell(num(c.succeeded), "n"), cell(num(c.failed), "n"), cell(num(c.skipped), "n"), cell(num(c.queued), "n"), cell(num(c.retrying), "n"), cell(num(c.total), "n"),
      cell(num(u.inputTokens) + " (" + num(u.cachedTokens) + " cached)", "n"), cell(num(u.outputTokens) + " (" + num(u.reasoningTokens) + " reasoning)", "n"),
      cell(money(p.cost, p.currency), "n"), cell(dur(p.elapsedMs), "n"), cell(p.status === "running" ? dur(p.etaMs) : "-", "n")));
    if (v.version !== plotVersion) {
      plotVersion = v.version;
      document.getElementById("plots").replaceChildren(...v.plots.map((id) =>
        el("img", { src: "/jobs/" + encodeURIComponent(jobId) + "/plots/" + id + ".svg?v=" + encodeURIComponent(v.version), alt: id, "data-plot": id, width: "480", height: "220" })));
    }
    const errors = document.getElementById("errors");
    if (!v.errors.length) errors.replaceChildren(el("p", { class: "note" }, "None."));
    else errors.replaceChildren(...v.errors.map((g) => el("div", { class: "error-group" },
      el("p", {}, el("span", { class: "error-kind" }, g.kind), " — " + g.items + " item(s) ended with it, " + g.attempts + " attempt(s) failed with it"),
      el("ul", {}, ...g.messages.map((m) => el("li", {}, (m.count > 1 ? m.count + " × " : "") + (m.status ? "HTTP " + m.status + " " : "") + (m.providerCode ? "[" + m.providerCode + "] " : ""), el("q", { class: "provider-words" }, m.text)))))));
    renderItems();
  }
  const LIMIT = 1000;
  function renderItems() {
    if (!last) return;
    const f = document.getElementById("filter").value;
    const match = (i) => !f || (f === "retrying" ? i.retrying : i.status === f);
    const items = last.items.filter(match);
    const cur = last.progress.currency;
    replaceRows(document.querySelector("#items tbody"), items.slice(0, LIMIT).map((i) =>
      el("tr", { class: i.status, "data-item": i.id },
        el("td", {}, el("button", { class: "link", type: "button", onclick: () => openItem(i.id) }, i.id)),
        el("td", {}, ...i.documents.flatMap((d, k) => (k ? [el("br"), d] : [d]))),
        cell(i.status + (i.retrying ? " (retrying)" : "")), cell(num(i.attempts), "n"), cell(i.deliveries === null ? "" : num(i.deliveries), "n"),
        cell(num(i.inputTokens), "n"), cell(num(i.outputTokens), "n"), cell(num(i.reasoningTokens), "n"), cell(money(i.cost, cur), "n"),
        cell(i.errorKind || ""), cell(i.agreement === null ? "" : Math.round(i.agreement * 100) + "%", "n"), cell(i.citationScore === null ? "" : String(i.citationScore), "n"),
        cell(i.durationMs === null ? "" : dur(i.durationMs), "n"))));
    document.getElementById("shown").textContent = items.length > LIMIT ? "the first " + LIMIT + " of " + items.length + " items" : items.length + " item(s)";
  }
  async function openItem(id) {
    opened = id;
    const box = document.getElementById("item");
    box.hidden = false;
    box.replaceChildren(el("p", { class: "note" }, "Loading " + id + "…"));
    try {
      const d = await getJson("/api/jobs/" + encodeURIComponent(jobId) + "/items/" + encodeURIComponent(id));
      const r = d.result;
      const parts = [el("h2", {}, "Item ", el("code", {}, d.id)), el("p", { class: "note" }, d.documents.join(", "))];
      if (r) {
        parts.push(el("p", {}, r.status + " after " + r.attempts + " attempt(s)" + (r.deliveries ? ", " + r.deliveries + " deliveries" : "") + "; " + num(r.usage.inputTokens) + " input, " + num(r.usage.outputTokens) + " output tokens; " + money(r.cost, r.currency) + "; " + dur(r.durationMs)));
        if (r.error) parts.push(el("p", { class: "item-error" }, el("span", { class: "error-kind" }, r.error.kind), ": " + r.error.message));
      } else parts.push(el("p", { class: "note" }, "No result yet: the item is queued or running."));
      parts.push(el("h3", {}, "Answer"), d.answer ? el("pre", { class: "answer" }, d.answer.text) : el("p", { class: "note" }, "No answer."));
      if (d.answer && d.answer.cut) parts.push(el("p", { class: "note" }, "Cut here; the whole answer is " + d.answer.path + " in the run."));
      if (d.reasoning) parts.push(el("details", { class: "reasoning" }, el("summary", {}, "Reasoning trace (" + num(d.reasoning.text.length) + " characters)"), el("pre", {}, d.reasoning.text)));
      parts.push(el("h3", {}, "Attempts"));
      if (!d.attempts.length) parts.push(el("p", { class: "note" }, "No attempt has ended yet."));
      else parts.push(el("table", { class: "attempts" },
        el("thead", {}, el("tr", {}, ...["#", "status", "started", "calls", "input", "output", "cost", "error"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...d.attempts.map((a) => el("tr", {},
          cell(String(a.attempt), "n"), cell(a.status), cell(a.startedAt), cell(String(a.calls.length), "n"), cell(num(a.usage.inputTokens), "n"), cell(num(a.usage.outputTokens), "n"),
          cell(money(a.cost, a.currency), "n"),
          cell(a.error ? a.error.kind + (a.error.status ? " (HTTP " + a.error.status + ")" : "") + ": " + a.error.message : ""))))));
      if (opened === id) box.replaceChildren(...parts);
    } catch (e) {
      box.replaceChildren(el("p", { class: "note" }, "Cannot read item " + id + ": " + e.message));
    }
  }
  async function job() {
    let again = true;
    try {
      last = await getJson("/api/jobs/" + encodeURIComponent(jobId));
      renderJob(last);
      again = last.progress.status === "running";
    } catch (e) {
      document.getElementById("status").textContent = "Cannot read the job: " + e.message;
    }
    if (again) setTimeout(job, POLL);
  }

  if (body.dataset.page === "jobs") jobs();
  if (body.dataset.page === "job") {
    document.getElementById("filter").addEventListener("change", renderItems);
    job();
  }
})();
`;
