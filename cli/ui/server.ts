/**
 * `longdoc ui`'s web server: node:http on loopback, read-only (GET and HEAD only), serving the
 * pages of page.ts, JSON read through a StoreReader (the local state or the deployed bucket, as
 * `status` reads them) and the run's plots as SVG. Requests whose Host is not this loopback
 * address are refused, so a web page elsewhere cannot read the runs through DNS rebinding.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { LongdocError } from "../../shared/errors.ts";
import { listJobs } from "../../shared/run/jobs.ts";
import { newJobViewCache, readItemDetail, readJobView, type JobView, type JobViewCache } from "../../shared/run/job-view.ts";
import { renderPlot } from "../../shared/run/plots.ts";
import type { RunProgress } from "../../shared/run/progress.ts";
import type { ObjectStore } from "../../shared/run/store.ts";
import type { StoreReader } from "../readers.ts";
import { APP_CSS, APP_JS, jobPage, jobsPage, PAGE_CSP } from "./page.ts";

export interface UiServerOptions {
  reader: StoreReader;
  /** 0 picks a free port. */
  port: number;
  /** How often the page polls a running job. */
  pollMs: number;
  /** What the page says it reads, e.g. "the local state '.longdoc/state'". */
  source: string;
  /** A last word on a status read from the store (a local run with no live process is interrupted). */
  adjust?: (status: RunProgress["status"]) => RunProgress["status"];
}

export interface UiServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const HOST = "127.0.0.1";
const JOB_ID = /^[A-Za-z0-9._-]+$/;
/** A view read this recently is served again (a page and its plot images ask together). */
const FRESH_MS = 500;

const COMMON_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
  "Cross-Origin-Resource-Policy": "same-origin",
};

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  // One read of the store at a time: the local reader reopens the emulator under a running read otherwise.
  let queue: Promise<unknown> = Promise.resolve();
  const read = <T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> => {
    const next = queue.then(() => o.reader.read(fn));
    queue = next.catch(() => undefined);
    return next;
  };
  const views = new Map<string, { cache: JobViewCache; view?: JobView; at: number }>();
  const adjust = (v: JobView): JobView => {
    const status = o.adjust?.(v.progress.status) ?? v.progress.status;
    return status === v.progress.status ? v : { ...v, progress: { ...v.progress, status, etaMs: null } };
  };
  const jobView = async (jobId: string, maxAgeMs = FRESH_MS): Promise<JobView> => {
    let entry = views.get(jobId);
    if (!entry) views.set(jobId, (entry = { cache: newJobViewCache(), at: 0 }));
    if (entry.view && Date.now() - entry.at <= maxAgeMs) return entry.view;
    const e = entry;
    const view = adjust(await read((store) => readJobView(store, jobId, e.cache)));
    e.view = view;
    e.at = Date.now();
    return view;
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => sendError(res, e));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const port = (server.address() as AddressInfo).port;
    if (req.headers.host !== `${HOST}:${port}` && req.headers.host !== `localhost:${port}`) return send(res, 421, "text/plain; charset=utf-8", "this server answers only on its loopback address\n");
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain; charset=utf-8", "read-only: GET and HEAD only\n", { Allow: "GET, HEAD" });
    const url = new URL(req.url ?? "/", `http://${HOST}:${port}`);
    let parts: string[];
    try {
      parts = url.pathname.split("/").slice(1).map((p) => decodeURIComponent(p));
    } catch {
      return send(res, 400, "text/plain; charset=utf-8", "malformed path\n");
    }
    const page = { source: o.source, pollMs: o.pollMs };
    if (url.pathname === "/") return send(res, 200, "text/html; charset=utf-8", jobsPage(page), { "Content-Security-Policy": PAGE_CSP });
    if (url.pathname === "/app.js") return send(res, 200, "text/javascript; charset=utf-8", APP_JS);
    if (url.pathname === "/app.css") return send(res, 200, "text/css; charset=utf-8", APP_CSS);
    if (url.pathname === "/api/jobs") {
      const jobs = await read((store) => listJobs(store));
      return sendJson(res, { jobs: jobs.map((j) => (j.status === "running" ? { ...j, status: o.adjust?.(j.status) ?? j.status } : j)) });
    }
    if (parts[0] === "jobs" && parts.length === 2 && JOB_ID.test(parts[1]!)) {
      await jobView(parts[1]!); // an unknown job is a 404 here, not an empty page
      return send(res, 200, "text/html; charset=utf-8", jobPage({ ...page, jobId: parts[1]! }), { "Content-Security-Policy": PAGE_CSP });
    }
    if (parts[0] === "jobs" && parts.length === 4 && parts[2] === "plots" && JOB_ID.test(parts[1]!)) {
      const view = await jobView(parts[1]!, Infinity);
      const plot = view.plots.find((p) => `${p.id}.svg` === parts[3]);
      if (!plot) return send(res, 404, "text/plain; charset=utf-8", "no such plot\n");
      return send(res, 200, "image/svg+xml; charset=utf-8", renderPlot(plot), { "Content-Security-Policy": "default-src 'none'" });
    }
    if (parts[0] === "api" && parts[1] === "jobs" && parts.length === 3 && JOB_ID.test(parts[2]!)) {
      const v = await jobView(parts[2]!);
      const version = `${v.progress.counts.succeeded + v.progress.counts.failed + v.progress.counts.skipped}-${v.items.reduce((n, i) => n + i.attempts, 0)}-${v.progress.cost}`;
      return sendJson(res, { progress: v.progress, items: v.items, errors: v.errors, plots: v.plots.map((p) => p.id), version });
    }
    if (parts[0] === "api" && parts[1] === "jobs" && parts.length === 5 && parts[3] === "items" && JOB_ID.test(parts[2]!)) {
      const jobId = parts[2]!;
      await jobView(jobId, Infinity);
      const entry = views.get(jobId)!;
      const detail = await read((store) => readItemDetail(store, entry.cache.job!, parts[4]!, entry.cache));
      if (!detail) return sendJson(res, { error: `no item '${parts[4]}' in job '${jobId}'` }, 404);
      return sendJson(res, detail);
    }
    return send(res, 404, "text/plain; charset=utf-8", "not found\n");
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, HOST, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${HOST}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(body, "utf8");
  res.writeHead(status, { ...COMMON_HEADERS, "Content-Type": type, "Content-Length": String(bytes.byteLength), ...headers });
  res.end(res.req.method === "HEAD" ? undefined : bytes);
}

function sendJson(res: ServerResponse, value: unknown, status = 200): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value));
}

/** A job or item the store does not have is a 404 with longdoc's words; anything else a 500 that names the error. */
function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const message = e instanceof Error ? e.message : String(e);
  sendJson(res, { error: message }, LongdocError.is(e) ? 404 : 500);
}
