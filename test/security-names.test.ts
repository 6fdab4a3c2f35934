import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { S3Event } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { driveLocalRun, runLocalJob } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { submitFromEvent } from "../shared/submit/trigger.ts";
import { useLoopback } from "./helpers/loopback.ts";

// Hostile document names, through a real local run (files on disk) and a real upload trigger
// (S3 keys), must not make longdoc write anywhere but runs/<jobId>/ in the bucket and
// <out>/<jobId>/ on disk. test/hardening-mirror.test.ts covers a bucket that already holds
// hostile keys under runs/<jobId>/ (the mirror refuses them); here the names come in as input.

const CONTROL = /[\u0000-\u001f\u007f]/;
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** Every file under `dir`, relative, with '/' separators. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"));
  }
  return out.sort();
}

/** A key's parts after `runs/<jobId>/` are plain names: no '..', '.', empty part, backslash or control character. */
function expectPlainRunKey(key: string, jobId: string) {
  expect(key.startsWith(`runs/${jobId}/`), key).toBe(true);
  for (const part of key.slice(`runs/${jobId}/`.length).split("/")) {
    expect(["", ".", ".."], key).not.toContain(part);
    expect(part, key).not.toMatch(CONTROL);
    expect(part, key).not.toContain("\\");
  }
}

describe("document names cannot write outside their run's prefix", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 5 } });

  it("a local run over files named with control characters, backslashes, encoded traversal and 250 characters", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-sec-names-"));
    await mkdir(path.join(dir, "docs"));
    const names = ["ctl\u0001\u001b[31mred\nline.md", `${"x".repeat(250)}.md`, "up\\..\\..\\evil.md", "%2e%2e%2fencoded.md", "a..b.md"];
    for (const [i, n] of names.entries()) await writeFile(path.join(dir, "docs", n), `# Doc ${i}\n\nRevenue was ${i + 1} million.\n`);
    const jobFile = path.join(dir, "job.yaml");
    await writeFile(jobFile, "name: sec-names\ndocuments:\n  - path: docs/*\nprompt: What was revenue?\nthinking: { enabled: false }\nmaxOutputTokens: 2048\n");
    const outDir = path.join(dir, "out");
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const before = new Set(await store.listKeys(""));

    const run = await runLocalJob({ inProcess: true, jobFile, outDir, workers: 1, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack });
    expect(run.manifest.status, JSON.stringify(run.manifest.items.map((i) => [i.documents, i.status, i.error]))).toBe("succeeded");
    expect(run.manifest.items).toHaveLength(names.length);
    expect(run.manifest.items.map((i) => path.basename(i.documents[0]!)).sort()).toEqual([...names].sort());
    for (const item of run.manifest.items) expect(item.id).toMatch(/^\d{3}-[a-z0-9-]+$/);

    const written = (await store.listKeys("")).filter((k) => !before.has(k));
    for (const key of written) {
      if (key.startsWith("inputs/")) {
        // Uploaded documents: inputs/<16 hex>/<the file's own name>, one part, so no way up.
        expect(key, key).toMatch(/^inputs\/[0-9a-f]{16}\/[^/]+$/);
        expect(names).toContain(key.split("/")[2]);
      } else if (key.startsWith("local/jobs/")) {
        expect(key).toMatch(/^local\/jobs\/[0-9a-f]{16}\.json$/);
      } else {
        expectPlainRunKey(key, run.job.jobId);
      }
    }
    // On disk: the job folder holds what the test made plus out/<jobId>/, nothing else.
    const files = await tree(dir);
    for (const f of files) {
      const inside = f.startsWith("docs/") || f === "job.yaml" || f.startsWith(`out/${run.job.jobId}/`);
      expect(inside, f).toBe(true);
      if (f.startsWith("out/")) expect(f, f).not.toMatch(CONTROL);
    }
    expect(files.filter((f) => f.endsWith("/result.json"))).toHaveLength(names.length);
  }, 90_000);

  it("an upload trigger over keys with '../', '//', control characters and 900 characters reads those exact objects and writes only under runs/<jobId>/", async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const jobsDir = await mkdtemp(path.join(tmpdir(), "longdoc-sec-upload-"));
    await writeFile(path.join(jobsDir, "sec-upload.yaml"), "name: sec-upload\ntrigger: upload\ndocuments:\n  - s3: s3://longdoc-runs/inbox/sec-upload/\nprompt: Summarise.\nthinking: { enabled: false }\nmaxOutputTokens: 2048\n");
    // What a traversal would hit if S3 keys were paths: it must stay untouched.
    const victim = "runs/victim/items/001-x/result.json";
    await store.put(victim, "VICTIM", "application/json");
    const hostile = [
      "inbox/sec-upload/../../runs/victim/items/001-x/result.json",
      "inbox/sec-upload//etc/passwd",
      "inbox/sec-upload/ctl\u0001\nname.md",
      `inbox/sec-upload/${"y".repeat(900)}.md`,
    ];
    const texts = hostile.map((_, i) => `# Upload ${i}\n\nCash was ${i + 3} million.\n`);
    for (const [i, key] of hostile.entries()) await store.put(key, texts[i]!, "text/markdown");
    for (const [i, key] of hostile.entries()) expect(new TextDecoder().decode(await store.getBytes(key)), key).toBe(texts[i]);

    const deps = {
      s3: loop.stack.s3,
      sqs: loop.stack.sqs,
      bucket: loop.stack.bucket,
      queueUrl: loop.stack.queueUrl,
      jobsDir,
      catalog: loadCatalog(),
      maxReceives: loop.stack.maxReceives,
      coord: createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table),
      log: silentLog,
    };
    const event = (key: string): S3Event =>
      ({
        Records: [{ eventTime: new Date().toISOString(), s3: { bucket: { name: loop.stack.bucket }, object: { key: encodeURIComponent(key).replace(/%20/g, "+"), eTag: sha256(key).slice(0, 32) } } }],
      }) as unknown as S3Event;
    const before = new Set(await store.listKeys(""));
    const simBefore = loop.sim.calls.length;
    const jobs = [];
    for (const key of hostile) jobs.push(...(await submitFromEvent(deps, event(key))));
    expect(jobs).toHaveLength(hostile.length);
    const outDir = path.join(jobsDir, "out");
    for (const job of jobs) {
      expect(job.jobId).toMatch(/^sec-upload-\d{8}-\d{6}-[0-9a-f]{4}$/);
      const { manifest } = await driveLocalRun({ inProcess: true, stack: loop.stack, job, outDir, workers: 1, settings: loadSettings(loop.env()), log: silentLog });
      expect(manifest.status, JSON.stringify(manifest.items.map((i) => [i.documents, i.error]))).toBe("succeeded");
      expect(manifest.items[0]!.id).toMatch(/^\d{3}-[a-z0-9-]+$/);
    }
    // Each job's model call got its own upload's text, read from that exact key.
    const got = loop.sim.calls.slice(simBefore).map((c) => c.documents[0]!.sha256).sort();
    expect(got).toEqual(texts.map(sha256).sort());
    expect(new TextDecoder().decode(await store.getBytes(victim))).toBe("VICTIM");
    const written = (await store.listKeys("")).filter((k) => !before.has(k));
    for (const key of written) {
      const job = jobs.find((j) => key.startsWith(`runs/${j.jobId}/`));
      expect(job, key).toBeDefined();
      expectPlainRunKey(key, job!.jobId);
    }
    for (const f of await tree(outDir)) {
      expect(jobs.some((j) => f.startsWith(`${j.jobId}/`)), f).toBe(true);
      expect(f, f).not.toMatch(CONTROL);
    }
    expect(written.filter((k) => k.endsWith("/manifest.json")).sort()).toEqual(jobs.map((j) => keys.manifest(j.jobId)).sort());
  }, 120_000);
});
