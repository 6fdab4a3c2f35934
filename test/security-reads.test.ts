import { createHash } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { driveLocalRun } from "../shared/local/run.ts";
import { silentLog } from "../shared/log.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import { sendTasks, type TaskMessage } from "../shared/run/queue.ts";
import { ObjectStore } from "../shared/run/store.ts";
import { loadSettings } from "../shared/settings.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { useLoopback } from "./helpers/loopback.ts";

// A worker reads only the documents job.json lists for the item: the task message's own
// `documents` are never read, and a task naming an item or job that is not there is dropped.
// (Job files cannot reach outside their folder with `path:` either: test/hardening-cli.test.ts, item 5.)

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("a task cannot make a worker read outside its job's documents", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 5 } });

  it("forged task messages (other document URIs, an item or job id that climbs out) read nothing but job.json's documents", async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const okText = "# Memo\n\nRevenue rose 4%.\n";
    const secretText = "# Secret\n\nsk-this-must-never-be-read\n";
    await store.put("inputs/sec-reads/ok.md", okText, "text/markdown");
    await store.put("secret/keys.md", secretText, "text/markdown");
    const spec = parseJobText("name: sec-reads\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: false }\nmaxOutputTokens: 256\n", "sec-reads.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives, coord: createCoordinator(loop.stack.dynamo.client, loop.stack.dynamo.table) },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "ok.md", uri: s3Uri(loop.stack.bucket, "inputs/sec-reads/ok.md") }], outputSchema: null },
    );
    const secretUri = s3Uri(loop.stack.bucket, "secret/keys.md");
    const itemId = job.items[0]!.id;
    const forged: TaskMessage[] = [
      { v: 1, jobId: job.jobId, itemId, bucket: loop.stack.bucket, documents: [secretUri] },
      { v: 1, jobId: job.jobId, itemId: "../../../secret", bucket: loop.stack.bucket, documents: [secretUri] },
      { v: 1, jobId: `${job.jobId}/../../secret`, itemId, bucket: loop.stack.bucket, documents: [secretUri] },
    ];
    await sendTasks(loop.stack.sqs, loop.stack.queueUrl, forged);
    const before = new Set(await store.listKeys(""));
    const simBefore = loop.sim.calls.length;
    const dir = await mkdtemp(path.join(tmpdir(), "longdoc-sec-reads-"));

    const { manifest } = await driveLocalRun({ inProcess: true, stack: loop.stack, job, outDir: path.join(dir, "out"), workers: 1, settings: loadSettings(loop.env()), log: silentLog });
    expect(manifest.status).toBe("succeeded");
    expect(manifest.items).toHaveLength(1);

    const calls = loop.sim.calls.slice(simBefore);
    // One call (the forged duplicate of the real item found its result or its claim), over job.json's document.
    expect(calls.filter((c) => c.status === 200)).toHaveLength(1);
    expect(calls.flatMap((c) => c.documents.map((d) => d.sha256))).toEqual([sha256(okText)]);
    const written = (await store.listKeys("")).filter((k) => !before.has(k));
    for (const key of written) expect(key.startsWith(`runs/${job.jobId}/`), key).toBe(true);
    expect(written.some((k) => k.includes(".."))).toBe(false);
    expect(new TextDecoder().decode(await store.getBytes("secret/keys.md"))).toBe(secretText);
  }, 90_000);
});
