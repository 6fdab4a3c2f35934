// Where a webhook may go (public addresses only, checked after DNS resolution; redirects not
// followed) and notify.json kept as delivery goes, down to `run` telling a delivery still pending.
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import type { JobRecord } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { silentLog } from "../shared/log.ts";
import type { Manifest } from "../shared/run/manifest.ts";
import { createNotifier, type NotifyRecord } from "../shared/run/notify.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { addressProblem, deliverWebhook } from "../shared/run/webhook.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

const SECRET = `whsec_${Buffer.from("longdoc-test-webhook-secret-0123").toString("base64")}`;

/** A loopback receiver: `answer` decides each call's status and headers; `delayMs` before answering. */
async function receiver(o: { delayMs?: number; answer?: (n: number) => { status: number; headers?: Record<string, string> } } = {}) {
  let calls = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const n = ++calls;
      setTimeout(() => {
        const a = o.answer?.(n) ?? { status: 200 };
        res.writeHead(a.status, a.headers);
        res.end();
      }, o.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    calls: () => calls,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe("webhook addresses: public only, checked after resolution, redirects not followed", () => {
  it("refuses private, loopback, link-local and mapped addresses in the URL, without connecting", () => {
    for (const [address, kind] of [
      ["10.1.2.3", "private or reserved"],
      ["172.20.0.1", "private or reserved"],
      ["192.168.1.1", "private or reserved"],
      ["100.64.0.1", "private or reserved"],
      ["169.254.169.254", "link-local"],
      ["127.0.0.1", "loopback"],
      ["0.0.0.0", "private or reserved"],
      ["::1", "loopback"],
      ["fe80::1", "link-local"],
      ["fd00::1", "private or reserved"],
      ["::ffff:127.0.0.1", "loopback"],
      ["::ffff:a9fe:a9fe", "link-local"],
    ] as const) {
      expect(addressProblem(address, false), address).toContain(`${kind} address`);
    }
    expect(addressProblem("93.184.215.14", false)).toBeNull();
    expect(addressProblem("2606:4700::1111", false)).toBeNull();
    // The loopback opt-in lets loopback through, nothing else.
    expect(addressProblem("127.0.0.1", true)).toBeNull();
    expect(addressProblem("10.0.0.1", true)).not.toBeNull();
  });

  it("a URL naming a private address or the metadata service is not called", async () => {
    for (const url of ["https://10.0.0.7/hook", "https://169.254.169.254/latest/meta-data/", "https://[::ffff:7f00:1]/hook", "https://[fd12::5]/hook"]) {
      const out = await deliverWebhook(url, "{}", { secret: SECRET, attempts: 1 });
      expect(out, url).toMatchObject({ ok: false, attempts: 0, status: null });
      expect(out.error).toMatch(/^not sent: .* address; webhooks go to public addresses only$/);
    }
  });

  it("a name that resolves to a private address is refused after resolution, the loopback opt-in included", async () => {
    const r = await receiver();
    try {
      const resolve = async (host: string) =>
        host === "mixed.example.com" ? [{ address: "93.184.215.14", family: 4 }, { address: "10.9.8.7", family: 4 }] : [{ address: host === "v6.example.com" ? "::1" : "127.0.0.1", family: host === "v6.example.com" ? 6 : 4 }];
      for (const host of ["hooks.example.com", "mixed.example.com", "v6.example.com"]) {
        const out = await deliverWebhook(`https://${host}:${r.port}/hook`, "{}", { secret: SECRET, attempts: 1, loopbackHttp: true, resolve });
        expect(out.error, host).toMatch(new RegExp(`^not sent: ${host.replace(/\./g, "\\.")} resolves to \\S+, a (loopback|private or reserved) address`));
      }
      // The system resolver: localhost is loopback, refused without the opt-in.
      const local = await deliverWebhook(`https://localhost:${r.port}/hook`, "{}", { secret: SECRET, attempts: 1 });
      expect(local.error).toMatch(/^not sent: localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
      expect(r.calls()).toBe(0);
      // With the opt-in, a loopback host name is called (over http).
      expect(await deliverWebhook(`https://localhost:${r.port}/hook`, "{}", { secret: SECRET, attempts: 1, loopbackHttp: true })).toMatchObject({ ok: true, status: 200 });
      expect(r.calls()).toBe(1);
    } finally {
      await r.close();
    }
  });

  it("a redirect is the receiver's final answer: not followed, not retried", async () => {
    const target = await receiver();
    const r = await receiver({ answer: () => ({ status: 307, headers: { location: `http://127.0.0.1:${target.port}/elsewhere` } }) });
    try {
      const out = await deliverWebhook(`https://127.0.0.1:${r.port}/hook`, "{}", { secret: SECRET, loopbackHttp: true, sleep: async () => {} });
      expect(out).toEqual({ ok: false, attempts: 1, status: 307, error: "the receiver answered 307 (a redirect, which is not followed)" });
      expect(target.calls()).toBe(0);
    } finally {
      await r.close();
      await target.close();
    }
  });
});

describe("notify.json is written before the webhook's first call and after each attempt", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startLocalStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("a slow receiver: the record exists (pending) while the first call waits, then follows each attempt to the end", async () => {
    const r = await receiver({ delayMs: 1500 });
    try {
      const store = new ObjectStore(stack.s3, stack.bucket);
      const spec = parseJobText(`name: slow\ndocuments:\n  - path: a.md\nprompt: p\nnotify:\n  webhook: https://127.0.0.1:${r.port}/hook?token=t\n`, "slow.yaml");
      const job = { jobId: "slow-20260101-000000-abcd", name: "slow", spec } as unknown as JobRecord;
      const manifest = { jobId: job.jobId, job: "slow", status: "succeeded", counts: { total: 1, succeeded: 1, failed: 0, skipped: 0 }, cost: 0.01, currency: "USD", costUsd: 0.01, finishedAt: new Date().toISOString() } as unknown as Manifest;
      const notifier = createNotifier({ log: silentLog, webhookSecret: SECRET, webhook: { loopbackHttp: true, attempts: 3, timeoutMs: 500, backoffBaseMs: 50 } });
      const seen: NotifyRecord[] = [];
      const ended = notifier.jobEnded(store, job, manifest);
      let done = false;
      void ended.then(() => (done = true));
      while (!done) {
        const rec = await store.getJson<NotifyRecord>(keys.notify(job.jobId));
        if (rec && JSON.stringify(rec) !== JSON.stringify(seen.at(-1))) seen.push(rec);
        await new Promise((res) => setTimeout(res, 20));
      }
      const final = await ended;
      expect(seen[0]!.webhook).toMatchObject({ url: `https://127.0.0.1:${r.port}/hook`, pending: true, attempts: 0 });
      expect(seen.some((s) => s.webhook?.pending && s.webhook.attempts === 1 && s.webhook.error === "no response (timed out)" && s.webhook.nextAttemptAt !== null)).toBe(true);
      expect(final.webhook).toMatchObject({ pending: false, ok: false, attempts: 3, error: "no response (timed out)", nextAttemptAt: null });
      expect(await store.getJson<NotifyRecord>(keys.notify(job.jobId))).toEqual(final);
    } finally {
      await r.close();
    }
  }, 30_000);
});

describe("run and a webhook receiver that does not answer", () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("run says the delivery is still pending; notify.json is in out/ and `results` copies it again", async () => {
    const r = await receiver({ delayMs: 120_000 });
    try {
      const dir = await mkdtemp(path.join(tmpdir(), "longdoc-webhook-run-"));
      await mkdir(path.join(dir, "docs"));
      await writeFile(path.join(dir, "docs", "a.md"), "# Memo\n\nCash rose 4%.\n");
      const job = path.join(dir, "job.yaml");
      await writeFile(job, `name: hook\ndocuments:\n  - path: docs/a.md\nprompt: Summarise.\nnotify:\n  webhook: https://127.0.0.1:${r.port}/hook\n`);
      const env = { ...process.env, DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL, LONGDOC_WEBHOOK_SECRET: SECRET, LONGDOC_WEBHOOK_LOOPBACK_HTTP: "1" };
      const state = path.join(dir, "state");
      const run = await promisify(execFile)(process.execPath, [path.resolve("bin/longdoc.ts"), "run", job, "--state", state, "--out", path.join(dir, "out"), "--json"], { env, timeout: 90_000 });
      const jobId = (JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { jobId: string }).jobId;
      expect(run.stderr).toMatch(new RegExp(`note: the webhook delivery to https://127\\.0\\.0\\.1:${r.port}/hook \\(msg_[0-9a-f]{32}\\) was still pending when the run stopped its workers`));
      expect(run.stderr).toContain(`'longdoc results ${jobId} --state ${state}' copies it out again`);
      const record = JSON.parse(await readFile(path.join(dir, "out", jobId, "notify.json"), "utf8")) as NotifyRecord;
      expect(record.webhook).toMatchObject({ pending: true, ok: false });
      expect(record.event.jobId).toBe(jobId);
      expect(r.calls()).toBeGreaterThanOrEqual(1);
      const again = path.join(dir, "again");
      await promisify(execFile)(process.execPath, [path.resolve("bin/longdoc.ts"), "results", jobId, "--state", state, "--out", again], { env, timeout: 60_000 });
      expect(JSON.parse(await readFile(path.join(again, jobId, "notify.json"), "utf8"))).toEqual(record);
    } finally {
      await r.close();
    }
  }, 120_000);
});
