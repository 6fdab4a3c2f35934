import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { MULTIPART_THRESHOLD_BYTES, ObjectStore } from "../shared/run/store.ts";

const MB = 1000 * 1000;

/** A Markdown document of about `bytes` bytes, made fast: one paragraph repeated, numbered. */
function markdown(bytes: number): Buffer {
  const para = (i: number) => `## Note ${i}\n\nRevenue in segment ${i % 17} rose ${(i * 7) % 23}% to $${1000 + i} million; margin ${(i % 20) + 5}%.\n\n`;
  const block = Buffer.from(Array.from({ length: 2000 }, (_, i) => para(i)).join(""));
  const out = Buffer.alloc(bytes);
  for (let at = 0; at < bytes; at += block.length) block.copy(out, at, 0, Math.min(block.length, bytes - at));
  return out;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("large bodies go to S3 whole (multipart above 8 MiB), with a known length", () => {
  let stack: LocalStack;
  let dir: string;
  beforeAll(async () => {
    stack = await startLocalStack();
    dir = await mkdtemp(path.join(tmpdir(), "longdoc-store-"));
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a 50 MB Markdown document round-trips byte for byte through the emulator, without the unknown-length warning", async () => {
    const file = path.join(dir, "big.md");
    await writeFile(file, markdown(50 * MB));
    const bytes = await readFile(file);
    expect(bytes.byteLength).toBeGreaterThan(MULTIPART_THRESHOLD_BYTES);
    const warn = vi.spyOn(console, "warn");
    const write = vi.spyOn(process.stderr, "write");
    try {
      const store = new ObjectStore(stack.s3, stack.bucket);
      await store.put("inputs/big/big.md", bytes, "text/markdown");
      await store.put("inputs/small/s.md", "# small\n", "text/markdown");
      const back = await store.getBytes("inputs/big/big.md");
      expect(back!.byteLength).toBe(bytes.byteLength);
      expect(sha256(back!)).toBe(sha256(bytes));
      expect(new TextDecoder().decode(await store.getBytes("inputs/small/s.md"))).toBe("# small\n");
      const said = [...warn.mock.calls, ...write.mock.calls].map((c) => String(c[0])).join("\n");
      expect(said).not.toContain("unknown length");
    } finally {
      warn.mockRestore();
      write.mockRestore();
    }
  });
});

describe("a document over the job's maxDocumentBytes fails its own item (end to end through the CLI)", () => {
  it("150 MB: uploaded in parts, its item ends document_too_large, the other item succeeds, and stderr has no unknown-length warning", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-store-run-"));
    try {
      await mkdir(path.join(dir, "docs"));
      await writeFile(path.join(dir, "docs", "huge.md"), markdown(150 * MB));
      await writeFile(path.join(dir, "docs", "memo.md"), "# Memo\n\nCash rose.\n");
      const job = path.join(dir, "job.yaml");
      await writeFile(job, "name: huge\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nmaxOutputTokens: 512\n");
      let r: { code: number; stdout: string; stderr: string };
      try {
        const { stdout, stderr } = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", "run", job, "--json", "--out", path.join(dir, "out"), "--state", path.join(dir, "state")], {
          env: { ...process.env, DASHSCOPE_API_KEY: "", QWEN_BASE_URL: "" },
          timeout: 120_000,
          maxBuffer: 16 * MB,
        });
        r = { code: 0, stdout, stderr };
      } catch (e) {
        const err = e as { code: number; stdout: string; stderr: string };
        r = { code: err.code, stdout: err.stdout, stderr: err.stderr };
      }
      expect(r.stderr).not.toContain("unknown length");
      expect(r.code).toBe(3);
      const summary = JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!);
      expect(summary.counts).toMatchObject({ total: 2, succeeded: 1, failed: 1 });
      const manifest = JSON.parse(await readFile(path.join(dir, "out", summary.jobId, "manifest.json"), "utf8"));
      const huge = manifest.items.find((i: { documents: string[] }) => i.documents.some((d) => d.endsWith("huge.md")));
      expect(huge.status).toBe("failed");
      expect(huge.error.kind).toBe("document_too_large");
      expect(huge.error.message).toMatch(/huge\.md/);
      expect(huge.usage.inputTokens).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
