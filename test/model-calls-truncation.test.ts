import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { retryLocalJob, runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import type { RetryRecord } from "../shared/run/control.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import type { AttemptRecord } from "../shared/run/attempt-record.ts";
import { MAX_CONTINUATIONS } from "../shared/worker/answer.ts";
import { useLoopback } from "./helpers/loopback.ts";

describe("answers cut at the output cap: retried with a larger cap, or continued", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let dir: string;
  let store: ObjectStore;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-truncation-"));
    await mkdir(path.join(dir, "docs"), { recursive: true });
    await writeFile(path.join(dir, "docs", "memo.md"), "# Memo\n\n" + "Revenue rose 4% in Q3 on pricing; costs fell 2%.\n".repeat(20));
    store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
  });
  const common = () => ({ inProcess: true, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack });
  const run = async (name: string, extra: string) => {
    const jobFile = path.join(dir, `${name}.yaml`);
    await writeFile(jobFile, `name: ${name}\ndocuments:\n  - path: docs/memo.md\nprompt: What rose, and by how much?\nthinking: { enabled: false }\n${extra}`);
    return runLocalJob({ ...common(), jobFile, fresh: true });
  };
  const answerOf = (outDir: string, id: string) => readFile(path.join(outDir, "items", id, "answer.md"), "utf8");

  /** The whole answer and its size, from a run with room to spare. */
  let whole: { text: string; tokens: number };
  beforeAll(async () => {
    const r = await run("whole", "");
    whole = { text: await answerOf(r.outDir, r.manifest.items[0]!.id), tokens: loop.sim.calls.at(-1)!.completionTokens };
    expect(whole.tokens).toBeGreaterThan(40);
  });

  it("retry --max-output-tokens re-runs cut answers (failed, and kept ones) with the larger cap", async () => {
    // Prepare: two jobs whose answers are cut at 20 tokens; one fails, one keeps the cut answer.
    const failed = await run("cut-fail", "maxOutputTokens: 20\n");
    const kept = await run("cut-keep", "maxOutputTokens: 20\noutput: { format: text, onTruncated: keep }\n");
    expect(failed.manifest.items[0]).toMatchObject({ status: "failed", error: { kind: "output_truncated" } });
    expect(failed.manifest.items[0]!.error!.message).toContain("longdoc retry <jobId> --max-output-tokens N");
    expect(kept.manifest.items[0]).toMatchObject({ status: "succeeded", answerTruncated: true });

    // A cap that is not larger is refused before anything moves.
    await expect(retryLocalJob({ ...common(), jobId: failed.job.jobId, maxOutputTokens: 20 })).rejects.toThrow("--max-output-tokens 20 is not larger than job");

    for (const r of [failed, kept]) {
      // Act
      const out = await retryLocalJob({ ...common(), jobId: r.job.jobId, maxOutputTokens: 2000 });
      // Assess: the item ran again with the new cap and its whole answer.
      if (!out.requeued) throw new Error("nothing was re-queued");
      const item = out.manifest.items[0]!;
      expect(item).toMatchObject({ status: "succeeded", finishReasons: ["stop"] });
      expect(item.answerTruncated).toBeUndefined();
      const round = await store.getJson<RetryRecord>(keys.retry(r.job.jobId, 1));
      expect(round).toMatchObject({ maxOutputTokens: 2000, items: [{ id: item.id }] });
      const attempt = await store.getJson<AttemptRecord>(keys.attempt(r.job.jobId, item.id, 1));
      expect(attempt!.calls[0]!.maxOutputTokens).toBe(2000);
      expect(await answerOf(out.outDir, item.id)).toBe(whole.text);
    }
  });

  it("onTruncated: continue asks the model to go on (partial mode) and joins the pieces into the whole answer", async () => {
    const cap = Math.ceil(whole.tokens / 3) + 2;
    const before = loop.sim.calls.length;
    const r = await run("continued", `maxOutputTokens: ${cap}\noutput: { format: text, onTruncated: continue }\n`);
    const item = r.manifest.items[0]!;
    const calls = loop.sim.calls.slice(before);
    expect(calls.map((c) => c.finishReason)).toEqual(["length", "length", "stop"]);
    // Each continuation sends the answer so far as a partial assistant message: the prompt grows with it.
    expect(calls[1]!.promptTokens).toBeGreaterThan(calls[0]!.promptTokens);
    expect(calls[2]!.promptTokens).toBeGreaterThan(calls[1]!.promptTokens);
    expect(item).toMatchObject({ status: "succeeded", finishReasons: ["length", "length", "stop"] });
    expect(item.answerTruncated).toBeUndefined();
    expect(r.manifest.truncatedItems).toBe(0);
    expect(await answerOf(r.outDir, item.id)).toBe(whole.text);
    // Every piece is paid for.
    expect(item.usage.outputTokens).toBe(calls.reduce((s, c) => s + c.completionTokens, 0));
  });

  it(`an answer still cut after ${MAX_CONTINUATIONS} continuations fails output_truncated, saying so`, async () => {
    const cap = Math.max(1, Math.floor(whole.tokens / (MAX_CONTINUATIONS + 2)));
    const before = loop.sim.calls.length;
    const r = await run("too-long", `maxOutputTokens: ${cap}\noutput: { format: text, onTruncated: continue }\n`);
    expect(loop.sim.calls.length - before).toBe(MAX_CONTINUATIONS + 1);
    const item = r.manifest.items[0]!;
    expect(item).toMatchObject({ status: "failed", error: { kind: "output_truncated" } });
    expect(item.error!.message).toContain(`it was continued ${MAX_CONTINUATIONS} time(s)`);
    expect(whole.text.startsWith(await answerOf(r.outDir, item.id))).toBe(true);
  });

  it("continue is refused with thinking on or JSON output (partial mode is non-thinking only)", () => {
    expect(() => parseJobText("name: x\ndocuments:\n  - path: a.md\nprompt: p\nthinking: { enabled: true }\noutput: { format: text, onTruncated: continue }\n", "x.yaml")).toThrow(
      /x\.yaml:\d+: output\.onTruncated: continue uses the API's partial mode, which works only with thinking off/,
    );
  });
});
