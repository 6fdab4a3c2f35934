// 429s that are not rate limits (docs/qwen-api.md §6): billing states halt the job at once with the
// provider's words; an unrecognised 429 code is retried a bounded number of times, then fails the
// item saying so. Against the simulator on loopback, through the local fleet.
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { createModelClient, type ChatRequest } from "../shared/model/client.ts";
import { loadSettings } from "../shared/settings.ts";
import { useLoopback } from "./helpers/loopback.ts";

const request: ChatRequest = {
  model: "qwen3-max",
  messages: [{ role: "user", content: "What rose, and by how much?" }],
  maxOutputTokens: 256,
  thinking: { enabled: false },
};

describe("429s that are not rate limits", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-billing-"));
    await mkdir(path.join(dir, "docs"), { recursive: true });
    for (let i = 1; i <= 12; i++) await writeFile(path.join(dir, "docs", `r${String(i).padStart(2, "0")}.md`), `# Report ${i}\n\nRevenue rose ${i}% on pricing.\n`);
  });
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
  const run = (name: string, workers: number) =>
    runLocalJob({
      jobFile: path.join(dir, `${name}.yaml`),
      outDir: path.join(dir, "out", name),
      workers,
      settings: loadSettings(loop.env()),
      log: silentLog,
      stack: loop.stack,
      fresh: true,
      timing: { backoffBaseMs: 10, backoffCapMs: 10 },
    });
  const jobFile = (name: string, docs: string) => writeFile(path.join(dir, `${name}.yaml`), `name: ${name}\ndocuments:\n  - path: ${docs}\nprompt: What rose?\nthinking: { enabled: false }\nmaxOutputTokens: 256\n`);

  it("classifies each billing 429 as model_billing that halts, with the provider's words; rate codes wait; an unknown code is a bounded retry", async () => {
    const client = createModelClient({ apiKey: "sk-test", baseURL: loop.sim.baseURL });
    const cases: [string, string, string][] = [
      ["prepaid_overdue", "PrepaidBillOverdue", "The prepaid bill is overdue."],
      ["postpaid_overdue", "PostpaidBillOverdue", "The postpaid bill is overdue."],
      ["not_purchased", "CommodityNotPurchased", "Commodity has not purchased yet."],
      // the free-quota refusal carries a code that is otherwise a wait: the words decide
      ["free_quota", "Throttling.AllocationQuota", "Free allocated quota exceeded."],
    ];
    for (const [kind, code, words] of cases) {
      loop.sim.injectFaults({ kind });
      const e = await failure(client.chat(request));
      expect(e, kind).toMatchObject({ code: "model_billing", haltsJob: true, retryable: false, status: 429, providerCode: code });
      expect((e as Error).message).toContain(words);
      expect((e as Error).message).toContain("the job is halted");
    }
    for (const kind of ["429", "quota", "burst"]) {
      loop.sim.injectFaults({ kind });
      expect(await failure(client.chat(request)), kind).toMatchObject({ code: "rate_limited", retryable: true, haltsJob: false });
    }
    loop.sim.injectFaults({ kind: "429_unknown" });
    const unknown = await failure(client.chat(request));
    expect(unknown).toMatchObject({ code: "model_error", retryable: true, haltsJob: false, status: 429, providerCode: "AccountStateUnlisted" });
    expect((unknown as Error).message).toContain("HTTP 429 and code AccountStateUnlisted, which is not one of its rate limits");
  });

  it("a billing 429 halts a 12-item job after at most one refusal per worker", async () => {
    await jobFile("overdue", "docs/r*.md");
    const workers = 3;
    const before = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "prepaid_overdue", count: 1000 });
    const started = Date.now();
    try {
      const r = await run("overdue", workers);
      const calls = loop.sim.calls.slice(before);
      expect(r.manifest.status).toBe("halted");
      expect(r.manifest.counts.total).toBe(12);
      // Every request the job sent was refused, and no worker sent a second one after its refusal.
      expect(calls.every((c) => c.status === 429 && c.errorCode === "PrepaidBillOverdue")).toBe(true);
      expect(calls.length).toBeGreaterThanOrEqual(1);
      expect(calls.length).toBeLessThanOrEqual(workers);
      const failed = r.manifest.items.filter((i) => i.status === "failed");
      expect(failed.length).toBe(calls.length);
      for (const f of failed) {
        expect(f.error!.kind).toBe("model_billing");
        expect(f.error!.message).toContain("The prepaid bill is overdue.");
      }
      const skipped = r.manifest.items.filter((i) => i.status === "skipped");
      expect(skipped.length).toBe(12 - failed.length);
      expect(skipped.every((i) => i.error?.kind === "halted" && i.error.message.includes("The prepaid bill is overdue."))).toBe(true);
      // At once: no backoff cycles through the queue (a few seconds here; the bound allows a loaded machine).
      expect(Date.now() - started).toBeLessThan(90_000);
    } finally {
      loop.sim.clearFaults();
    }
  });

  it("an unrecognised 429 code is retried up to maxAttempts, then fails the item saying so", async () => {
    await jobFile("unlisted", "docs/r01.md");
    const before = loop.sim.calls.length;
    loop.sim.injectFaults({ kind: "429_unknown", count: 1000 });
    try {
      const r = await run("unlisted", 1);
      const calls = loop.sim.calls.slice(before);
      expect(r.manifest.status).not.toBe("halted");
      const item = r.manifest.items[0]!;
      expect(item.status).toBe("failed");
      expect(item.attempts).toBe(3);
      expect(calls).toHaveLength(3);
      expect(item.error!.kind).toBe("model_error");
      expect(item.error!.message).toMatch(/HTTP 429 and code AccountStateUnlisted, which is not one of its rate limits; longdoc retries it .* up to the job's maxAttempts/);
    } finally {
      loop.sim.clearFaults();
    }
  });
});
