import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadRun, writeBatchOutput } from "../cli/results.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { mirrorRun, mirrorPath } from "../shared/run/mirror.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";

/** Every file under `dir`, relative to it. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

const JOB = { jobId: "", name: "t", items: [] };

describe("copying a run out never writes outside the target folder", () => {
  let stack: LocalStack;
  let store: ObjectStore;
  beforeAll(async () => {
    stack = await startLocalStack();
    store = new ObjectStore(stack.s3, stack.bucket);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const hostile = [
    "items/../../../escape.txt",
    "items/x/../../../../escape.txt",
    "../escape.txt",
    "/etc/escape.txt",
    "items//abs.txt",
    "items/C:/escape.txt",
    "items/a\\..\\..\\escape.txt",
    "items/new\nline.txt",
    "items/bell\u0007.txt",
  ];

  for (const [n, rel] of hostile.entries()) {
    it(`refuses the key runs/<job>/${JSON.stringify(rel)} naming it, and writes nothing (mirrorRun and downloadRun)`, async () => {
      const jobId = `hostile-${n}`;
      const root = await mkdtemp(path.join(tmpdir(), "longdoc-mirror-"));
      const outDir = path.join(root, "deep", "out");
      await store.putJson(keys.job(jobId), { ...JOB, jobId });
      await store.put(`${keys.item(jobId, "001-a", "answer.md")}`, "fine\n", "text/markdown");
      const key = `${keys.run(jobId)}${rel}`;
      await store.put(key, "escaped\n", "text/plain");
      expect(await store.listKeys(keys.run(jobId))).toContain(key);

      await expect(mirrorRun(store, jobId, outDir)).rejects.toThrow(`object key ${JSON.stringify(key)}`);
      await expect(downloadRun(store, jobId, outDir)).rejects.toThrow(`object key ${JSON.stringify(key)}`);
      expect(await tree(root)).toEqual([]);
      expect(existsSync("/etc/escape.txt")).toBe(false);
    });
  }

  it("refuses a job id that is a path", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "longdoc-mirror-id-"));
    await store.putJson("runs/../job.json", { ...JOB, jobId: ".." });
    await expect(mirrorRun(store, "..", path.join(root, "out"))).rejects.toThrow(/is not a job id/);
    await expect(downloadRun(store, "..", path.join(root, "out"))).rejects.toThrow(/is not a job id/);
    await expect(writeBatchOutput(store, "..", path.join(root, "out"))).rejects.toThrow(/is not a job id/);
    expect(await tree(root)).toEqual([]);
  });

  it("copies an ordinary run whole", async () => {
    const jobId = "plain-1";
    const root = await mkdtemp(path.join(tmpdir(), "longdoc-mirror-ok-"));
    await store.putJson(keys.job(jobId), { ...JOB, jobId });
    await store.put(keys.item(jobId, "001-a", "answer.md"), "answer\n", "text/markdown");
    await store.put(keys.item(jobId, "001-a", "previous/1/answer.md"), "older\n", "text/markdown");
    const dir = await mirrorRun(store, jobId, root);
    expect(await tree(dir)).toEqual(["items/001-a/answer.md", "items/001-a/previous/1/answer.md", "job.json"].map((p) => p.split("/").join(path.sep)));
    expect(await readFile(path.join(dir, "items", "001-a", "answer.md"), "utf8")).toBe("answer\n");
    expect(mirrorPath(dir, "runs/x/", "runs/x/items/a.md")).toBe(path.join(dir, "items", "a.md"));
  });
});
