import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { createModelClient, type ChatRequest } from "../shared/model/client.ts";
import { classifyModelError } from "../shared/model/errors.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { useLoopback } from "./helpers/loopback.ts";

const request: ChatRequest = {
  model: "qwen3-max",
  messages: [{ role: "user", content: '<document index="1" source="a.md">\nRevenue rose 4%.\n</document>\n\nWhat rose?' }],
  maxOutputTokens: 512,
  thinking: { enabled: false },
};

describe("model call errors: what is retried, what halts the job, what the user reads", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-errors-"));
    await mkdir(path.join(dir, "docs"), { recursive: true });
    for (const n of ["a", "b"]) await writeFile(path.join(dir, "docs", `${n}.md`), `# ${n}\n\nRevenue rose ${n === "a" ? 4 : 7}% on pricing.\n`);
  });
  const client = () => createModelClient({ apiKey: "sk-test", baseURL: loop.sim.baseURL });
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
  const run = async (name: string, body: string, env: Record<string, string> = {}) => {
    const jobFile = path.join(dir, `${name}.yaml`);
    const thinking = body.includes("thinking:") ? "" : "thinking: { enabled: false }\n";
    await writeFile(jobFile, `name: ${name}\ndocuments:\n  - path: docs/*.md\nprompt: What rose?\n${thinking}${body}`);
    return runLocalJob({
      jobFile,
      outDir: path.join(dir, "out"),
      workers: 1,
      settings: loadSettings({ ...loop.env(), ...env }),
      log: silentLog,
      stack: loop.stack,
      fresh: true,
      timing: { backoffBaseMs: 10, backoffCapMs: 10 },
    });
  };

  it("a malformed SSE chunk is transient: the attempt records it and the next one succeeds", async () => {
    loop.sim.injectFaults({ kind: "malformed" });
    const c = await failure(client().chat(request));
    expect(c).toMatchObject({ code: "model_error", retryable: true, haltsJob: false });
    expect((c as Error).message).toContain("malformed chunk");

    loop.sim.injectFaults({ kind: "malformed" });
    const r = await run("garbled", "");
    const first = r.manifest.items[0]!;
    expect(r.manifest.counts).toMatchObject({ total: 2, succeeded: 2 });
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const rec = await store.getJson<AttemptRecord>(keys.attempt(r.job.jobId, first.id, 1));
    expect(rec).toMatchObject({ status: "failed", error: { kind: "model_error" } });
    expect(rec!.requestId).toMatch(/^chatcmpl-/);
    expect(first.attempts).toBe(2);
  });

  it("the 403 of an exhausted free tier says so and halts the job", async () => {
    loop.sim.injectFaults({ kind: "free_tier" });
    const e = await failure(client().chat(request));
    expect(e).toMatchObject({ code: "model_billing", retryable: false, haltsJob: true, status: 403, providerCode: "AllocationQuota.FreeTierOnly" });
    expect((e as Error).message).toContain('turn off "use free tier only" in the Model Studio console');
    // The request id comes from the error body (the SDK reads only a header).
    expect((e as { requestId?: string }).requestId).toBe(loop.sim.calls.at(-1)!.requestId);

    loop.sim.injectFaults({ kind: "free_tier" });
    const r = await run("free-tier", "");
    expect(r.manifest.status).toBe("halted");
    expect(r.manifest.items.map((i) => i.error?.kind).sort()).toEqual(["halted", "model_billing"]);
  });

  it("a 400 on a setting every call sends (max_completion_tokens out of range) halts the job with the provider's message", async () => {
    // A catalog that claims more output than the endpoint allows: every call would be refused alike
    // (and a fast assumed decode, so the worker's deadline does not shrink the cap under the endpoint's limit).
    const catalog = path.join(dir, "catalog.json");
    await writeFile(catalog, JSON.stringify({ models: { "qwen3-max": { maxOutputTokensThinking: 40_000, decodeTokensPerSecond: 1000 } } }));
    const before = loop.sim.calls.length;
    const r = await run("too-many-tokens", "maxOutputTokens: 40000\nthinking: { enabled: true, budget: 81920 }\n", { LONGDOC_CATALOG: catalog });
    expect(loop.sim.calls.length - before).toBe(1);
    expect(r.manifest.status).toBe("halted");
    const failed = r.manifest.items.find((i) => i.status === "failed")!;
    expect(failed.error).toMatchObject({ kind: "model_bad_request" });
    expect(failed.error!.message).toContain("Range of max_completion_tokens should be [1, 114688]");
    expect(failed.error!.message).toContain("the job is halted");
    const skipped = r.manifest.items.find((i) => i.status === "skipped")!;
    expect(skipped.error!.message).toContain("Range of max_completion_tokens should be [1, 114688]");
  });

  it("an abort or timeout of the call is a retryable deadline, never internal", () => {
    for (const name of ["AbortError", "TimeoutError"]) {
      expect(classifyModelError(new DOMException("The operation was aborted", name))).toMatchObject({ code: "deadline", retryable: true });
    }
    expect(classifyModelError(new SyntaxError("Error reading response: malformed server-sent event JSON."))).toMatchObject({ code: "model_error", retryable: true });
    expect(classifyModelError(new Error("something else"))).toMatchObject({ code: "internal", retryable: false });
  });
});
