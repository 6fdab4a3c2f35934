// `longdoc ui` as a user runs it: the CLI serves a persisted local state on loopback; its JSON
// and plots are checked over real HTTP, and its pages in headless Chromium (Debian's chromium
// driven by playwright-core, as for report.html): the jobs list, a job page with its items,
// a live update while another process writes the run, and hostile names and answers shown as
// text with nothing run.
import { existsSync } from "node:fs";
import { request } from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRecord } from "../shared/job/record.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { startLocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import type { ItemResult, Manifest } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";
import { startUiProcess } from "./helpers/ui.ts";

const CHROMIUM = process.env.LONGDOC_CHROMIUM ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = Boolean(process.env.CI);
if (!HAVE_CHROMIUM && !IN_CI) console.warn(`skipping the longdoc ui browser tests: no ${CHROMIUM} (apt-get install chromium); the HTTP tests still run`);

/** Each payload sets window.__pwned if it ever runs. */
const PAYLOADS = ["<script>window.__pwned='script'</script>", "<img src=x onerror=\"window.__pwned='img'\">"];
const HOSTILE_DOC = `${PAYLOADS[1]!.replace(/"/g, "")}.md`;

let sim: Simulator;
let dir: string;
let state: string;
let manifest: Manifest;
let jobId: string;
let ui: Awaited<ReturnType<typeof startUiProcess>>;

beforeAll(async () => {
  sim = await startSimulator({ port: 0 });
  dir = await mkdtemp(path.join(tmpdir(), "longdoc-ui-"));
  state = path.join(dir, "state");
  await mkdir(path.join(dir, "docs"));
  await writeFile(path.join(dir, "docs", HOSTILE_DOC), `# Memo\n\n${PAYLOADS[0]} Revenue rose.\n`);
  await writeFile(path.join(dir, "docs", "plain.md"), "# Plain\n\nCosts fell by 3%.\n");
  await writeFile(path.join(dir, "docs", "empty.md"), ""); // an empty document fails its own item
  const jobFile = path.join(dir, "job.yaml");
  await writeFile(jobFile, `name: ui-test\ndocuments:\n  - path: docs/*.md\nprompt: ${JSON.stringify(`Summarise. ${PAYLOADS[0]}`)}\nthinking: { enabled: true, budget: 256 }\nmaxOutputTokens: 300\n`);
  const run = await runLocalJob({ inProcess: true,
    jobFile,
    outDir: path.join(dir, "out"),
    workers: 2,
    settings: loadSettings({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL }),
    log: silentLog,
    dataDir: state,
  });
  manifest = run.manifest;
  jobId = run.job.jobId;
  expect(manifest.counts).toEqual({ total: 3, succeeded: 2, failed: 1, skipped: 0 });
  ui = await startUiProcess(["--state", state]);
}, 120_000);

afterAll(async () => {
  expect(await ui?.stop()).toBe(0);
  await sim?.stop();
  await rm(dir, { recursive: true, force: true });
});

const get = (rel: string, init?: RequestInit) => fetch(new URL(rel, ui.url), init);

describe("longdoc ui over HTTP", () => {
  it("serves the jobs list as JSON: the run with its status, counts and cost", async () => {
    const r = await get("/api/jobs");
    expect(r.status).toBe(200);
    const { jobs } = (await r.json()) as { jobs: { jobId: string; status: string; counts: Manifest["counts"]; cost: number }[] };
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ jobId, job: "ui-test", status: "partial", counts: manifest.counts, cost: manifest.cost });
  });

  it("serves a job: progress, one row per item with attempts, tokens and cost, and errors grouped by kind with their words", async () => {
    const v = (await (await get(`/api/jobs/${jobId}`)).json()) as {
      progress: { status: string; counts: Record<string, number> };
      items: { id: string; documents: string[]; status: string; attempts: number; inputTokens: number; cost: number; errorKind: string | null }[];
      errors: { kind: string; items: number; messages: { text: string }[] }[];
      plots: string[];
    };
    expect(v.progress).toMatchObject({ status: "partial", counts: { succeeded: 2, failed: 1, queued: 0 } });
    expect(v.items.map((i) => i.id)).toEqual(manifest.items.map((i) => i.id));
    for (const [k, row] of v.items.entries()) {
      const m = manifest.items[k]!;
      expect(row).toMatchObject({ documents: m.documents, status: m.status, attempts: m.attempts, inputTokens: m.usage.inputTokens, cost: m.cost, errorKind: m.error?.kind ?? null });
    }
    const failed = manifest.items.find((i) => i.status === "failed")!;
    expect(v.errors).toEqual([{ kind: failed.error!.kind, items: 1, attempts: expect.any(Number), messages: [expect.objectContaining({ text: failed.error!.message })] }]);
    expect(v.plots).toEqual(["finished", "spend", "input-sizes", "durations", "quota-rpm", "quota-tpm"]);
  });

  it("serves each plot as SVG with one point per finished item", async () => {
    const r = await get(`/jobs/${jobId}/plots/finished.svg`);
    expect(r.headers.get("content-type")).toBe("image/svg+xml; charset=utf-8");
    const svg = await r.text();
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('data-points="3"');
    expect((await (await get(`/jobs/${jobId}/plots/spend.svg`)).text())).toContain('data-points="3"');
    expect((await get(`/jobs/${jobId}/plots/nope.svg`)).status).toBe(404);
  });

  it("serves an item: its answer and reasoning as text, and its attempts", async () => {
    const item = manifest.items.find((i) => i.status === "succeeded")!;
    const d = (await (await get(`/api/jobs/${jobId}/items/${item.id}`)).json()) as { answer: { text: string }; reasoning: { text: string }; attempts: { attempt: number; calls: unknown[] }[] };
    expect(d.answer.text).toBe(await readFile(path.join(dir, "out", jobId, item.answer!), "utf8"));
    expect(d.reasoning.text).toContain(PAYLOADS[0]);
    expect(d.attempts.map((a) => a.attempt)).toEqual([1]);
    expect(d.attempts[0]!.calls).toHaveLength(1);
    expect((await get(`/api/jobs/${jobId}/items/nope`)).status).toBe(404);
  });

  it("pages carry a CSP that allows only this server; writes, other hosts and unknown jobs are refused", async () => {
    const r = await get("/");
    expect(r.status).toBe(200);
    const csp = r.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await r.text();
    expect(html).not.toMatch(/<script>|https?:\/\/(?!www\.w3\.org)/);
    expect((await get("/api/jobs", { method: "POST" })).status).toBe(405);
    // fetch will not set Host: a raw request, as a page reached through DNS rebinding would send it.
    const rebound = await new Promise<number>((resolve, reject) =>
      request(new URL("/api/jobs", ui.url), { headers: { host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on("error", reject).end(),
    );
    expect(rebound).toBe(421);
    expect((await get(`/api/jobs/${jobId}/items/%E0%A4%A`)).status).toBe(400);
    const unknown = await get("/api/jobs/no-such-job");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toContain("no job 'no-such-job'");
  });
});

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("longdoc ui in headless Chromium", () => {
  let context: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI needs Chromium at ${CHROMIUM} for the longdoc ui browser tests: apt-get install chromium`);
    profile = await mkdtemp(path.join(tmpdir(), "longdoc-ui-profile-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  }, 60_000);
  afterAll(async () => {
    await context?.close();
    await rm(profile, { recursive: true, force: true });
  });

  /** Opens a page of a ui server; any request off that server is refused and recorded. */
  const open = async (base: string, rel: string): Promise<{ page: Page; errors: string[]; offsite: string[] }> => {
    const page = await context.newPage();
    const errors: string[] = [];
    const offsite: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.route(
      (u) => !u.href.startsWith(base),
      (route) => {
        offsite.push(route.request().url());
        return route.abort();
      },
    );
    await page.goto(new URL(rel, base).href, { waitUntil: "load" });
    return { page, errors, offsite };
  };

  const nothingRan = async (page: Page) => {
    expect(await page.evaluate(() => (globalThis as { __pwned?: string }).__pwned)).toBeUndefined();
    expect(await page.locator("script:not([src='/app.js'])").count()).toBe(0);
    expect(await page.locator("[onerror], [onload]").count()).toBe(0);
    expect(await page.locator("main img:not([data-plot])").count()).toBe(0);
  };

  it("the jobs list links to the job page, which shows every item, filters by status, and opens an item's answer, trace and attempts as text", async () => {
    const { page, errors, offsite } = await open(ui.url, "/");
    await page.locator("#jobs tbody tr").first().waitFor();
    const row = page.locator("#jobs tbody tr");
    expect(await row.count()).toBe(1);
    expect(await row.locator("td").allInnerTexts()).toEqual(expect.arrayContaining([jobId, "ui-test", "partial", "2", "1", "0", "3"]));
    await row.locator("a").click();
    await page.waitForURL(`**/jobs/${jobId}`);
    await page.locator("#items tbody tr").first().waitFor();
    expect(await page.locator("#run-status").innerText()).toBe("partial");
    expect(await page.locator("#items tbody tr").count()).toBe(3);
    // The hostile document name is a cell's text, and nothing it carries ran.
    expect(await page.locator("#items tbody").innerText()).toContain(HOSTILE_DOC);
    await nothingRan(page);
    // Errors grouped by kind with their words.
    const failed = manifest.items.find((i) => i.status === "failed")!;
    expect(await page.locator("#errors .error-kind").allInnerTexts()).toEqual([failed.error!.kind]);
    expect(await page.locator("#errors q.provider-words").first().innerText()).toBe(failed.error!.message);
    // Six plots, each an image this server drew.
    const plots = page.locator("#plots img");
    expect(await plots.count()).toBe(6);
    // (No waitForFunction with a string: the page's CSP forbids eval, rightly.)
    await expect.poll(() => plots.evaluateAll((imgs) => imgs.every((i) => (i as unknown as { complete: boolean; naturalWidth: number }).complete && (i as unknown as { naturalWidth: number }).naturalWidth > 0))).toBe(true);

    await page.selectOption("#filter", "failed");
    expect(await page.locator("#items tbody tr").count()).toBe(1);
    expect(await page.locator("#items tbody tr").getAttribute("data-item")).toBe(failed.id);
    await page.selectOption("#filter", "");

    const hostile = manifest.items.find((i) => i.documents.includes(`docs/${HOSTILE_DOC}`) || i.documents.some((d) => d.endsWith(HOSTILE_DOC)))!;
    await page.locator(`#items tr[data-item="${hostile.id}"] button`).click();
    await page.locator("#item pre.answer").waitFor();
    expect(await page.locator("#item pre.answer").innerText()).toBe((await readFile(path.join(dir, "out", jobId, hostile.answer!), "utf8")).trimEnd());
    const trace = await page.locator("#item details.reasoning pre").textContent();
    expect(trace).toContain(PAYLOADS[0]);
    expect(await page.locator("#item details.reasoning").evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(false);
    expect(await page.locator("#item table.attempts tbody tr").count()).toBe(1);
    await nothingRan(page);
    expect(errors).toEqual([]);
    expect(offsite).toEqual([]);
    await page.close();
  }, 60_000);

  it("follows a run another process is writing: the page updates as results land, and stops polling when the run ends", async () => {
    const liveState = path.join(dir, "live-state");
    const writer = await startLocalStack({ dataDir: liveState });
    const live = await (async () => {
      try {
        const store = new ObjectStore(writer.s3, writer.bucket);
        const t0 = Date.now();
        const job = liveJob(`live-${new Date(t0).toISOString().slice(0, 10).replace(/-/g, "")}-000000-abcd`, 3, t0);
        await store.putJson(keys.job(job.jobId), job);
        await store.putJson(keys.item(job.jobId, "item-1", "result.json"), liveResult("item-1", t0, 1_000));
        return { store, job, t0, ui: await startUiProcess(["--state", liveState]) };
      } catch (e) {
        await writer.stop();
        throw e;
      }
    })();
    try {
      const { page, errors } = await open(live.ui.url, `/jobs/${live.job.jobId}`);
      await page.locator("#items tbody tr").first().waitFor();
      expect(await page.locator("#run-status").innerText()).toBe("running");
      expect(await page.locator("#bar").evaluate((b) => (b as unknown as { value: number }).value)).toBe(1);
      expect(await page.locator("#items tr.queued").count()).toBe(2);
      for (const id of ["item-2", "item-3"]) await live.store.putJson(keys.item(live.job.jobId, id, "result.json"), liveResult(id, live.t0, 2_000));
      await expect.poll(() => page.locator("#run-status").innerText(), { timeout: 20_000 }).toBe("succeeded");
      expect(await page.locator("#items tr.succeeded").count()).toBe(3);
      expect(await page.locator("#bar").evaluate((b) => (b as unknown as { value: number }).value)).toBe(3);
      const svg = await (await fetch(new URL(`/jobs/${live.job.jobId}/plots/finished.svg`, live.ui.url))).text();
      expect(svg).toContain('data-points="3"');
      // The run is over: the page reads it no more (it polled every second while it ran).
      const polls: string[] = [];
      page.on("request", (r) => polls.push(r.url()));
      await page.waitForTimeout(2_500);
      expect(polls).toEqual([]);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await live.ui.stop();
      await writer.stop();
    }
  }, 60_000);
});

function liveJob(id: string, n: number, t0: number): JobRecord {
  return {
    version: 1,
    jobId: id,
    name: "live",
    model: "qwen3-max",
    submittedAt: new Date(t0).toISOString(),
    spec: {} as JobRecord["spec"],
    outputSchema: null,
    limits: { concurrency: 2, rpm: 60, tpm: 100_000, maxCostUsd: null, maxCost: null, maxDocumentBytes: 1 << 20 },
    currency: "USD",
    region: "ap-southeast-1",
    maxReceives: 3,
    maxAttempts: 3,
    items: Array.from({ length: n }, (_, i) => ({ id: `item-${i + 1}`, documents: [{ source: `d${i + 1}.md`, uri: `s3://b/d${i + 1}.md` }] })),
  };
}

function liveResult(id: string, t0: number, tokens: number): ItemResult {
  const finished = Date.now();
  return {
    version: 1,
    id,
    status: "succeeded",
    attempts: 1,
    documents: [{ source: `${id}.md`, tokens }],
    error: null,
    usage: { inputTokens: tokens, outputTokens: 100, reasoningTokens: 50, cachedTokens: 0 },
    cost: tokens / 1e6,
    currency: "USD",
    costUsd: tokens / 1e6,
    tier: null,
    model: "qwen3-max",
    finishReason: "stop",
    requestId: null,
    answer: null,
    reasoning: null,
    startedAt: new Date(t0).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - t0,
  };
}
