import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { startSimulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { ESM_REQUIRE_BANNER, INSTALLED_PACKAGES } from "../shared/bundle.ts";

/**
 * The worker as SST would ship it: an esbuild bundle (ESM, Node 24, minified, split into chunks
 * as infra/queue.ts asks) with the packages infra installs kept external, loaded in a plain Node
 * process with SST's linked-resource environment, and invoked on a real SQS message (a PDF, so
 * the PDF reader's chunk is loaded on first use). No SST engine or AWS account needed.
 */
describe("the worker Lambda bundle", () => {
  const outDir = path.resolve("node_modules/.cache/longdoc-bundle");
  let stack: LocalStack;
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  let bytes = 0;
  let finalizeBytes = 0;
  let inputsOf: Record<string, string[]> = {};

  beforeAll(async () => {
    await mkdir(outDir, { recursive: true });
    const result = await build({
      entryPoints: ["functions/worker.ts", "functions/submit.ts", "functions/dlq.ts", "functions/finalize.ts"],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node24",
      outdir: outDir,
      outExtension: { ".js": ".mjs" },
      external: INSTALLED_PACKAGES,
      metafile: true,
      logLevel: "silent",
      banner: { js: ESM_REQUIRE_BANNER },
    });
    // The worker, submit and dead-letter bundles against the budget they always had; the finalizer's apart.
    const outputs = Object.entries(result.metafile.outputs);
    bytes = outputs.filter(([file]) => !file.endsWith("finalize.mjs")).reduce((s, [, o]) => s + o.bytes, 0);
    finalizeBytes = outputs.filter(([file]) => file.endsWith("finalize.mjs")).reduce((s, [, o]) => s + o.bytes, 0);
    inputsOf = Object.fromEntries(Object.entries(result.metafile.outputs).map(([file, o]) => [path.basename(file), Object.keys(o.inputs)]));
    // The worker as it ships: minified, with code splitting (SST names the files .mjs).
    await build({
      entryPoints: ["functions/worker.ts"],
      bundle: true,
      minify: true,
      splitting: true,
      platform: "node",
      format: "esm",
      target: "node24",
      outdir: path.join(outDir, "worker-split"),
      outExtension: { ".js": ".mjs" },
      external: INSTALLED_PACKAGES,
      logLevel: "silent",
      banner: { js: ESM_REQUIRE_BANNER },
    });
    stack = await startLocalStack({ visibilityTimeoutS: 30 });
    sim = await startSimulator({ port: 0, apiKey: "sk-bundle" });
  });
  afterAll(async () => {
    await sim?.stop();
    await stack?.stop();
  });

  it("ships none of the local runtime, the simulator or the CLI, and the dead-letter function no model SDK", () => {
    expect(Object.keys(inputsOf).sort()).toEqual(["dlq.mjs", "finalize.mjs", "submit.mjs", "worker.mjs"]);
    for (const [bundle, inputs] of Object.entries(inputsOf)) {
      const ours = inputs.filter((i) => !i.includes("node_modules/"));
      expect(ours.length, bundle).toBeGreaterThan(0);
      expect(ours.filter((i) => /^(shared\/(local|sim)\/|cli\/|bin\/|test\/|bench\/)/.test(i)), bundle).toEqual([]);
    }
    expect(inputsOf["dlq.mjs"]!.filter((i) => i.includes("node_modules/openai/"))).toEqual([]);
    expect(inputsOf["finalize.mjs"]!.filter((i) => i.includes("node_modules/openai/") || i.includes("pdfjs-dist"))).toEqual([]);
    expect(inputsOf["worker.mjs"]!.some((i) => i.includes("node_modules/openai/"))).toBe(true);
  });

  it("bundles the four functions; the worker starts without SST and runs a PDF task end to end, and the finalizer ends the job", async () => {
    expect(bytes).toBeGreaterThan(0);
    // 20 MiB until submit planned batch lines: a `mode: batch` submit reads and counts its documents,
    // so the submit bundle carries the document readers and the tokenizer too.
    expect(bytes).toBeLessThan(24 * 1024 * 1024);
    // No model SDK, no document readers: the finalizer is the S3, SQS, SNS and DynamoDB clients and the report.
    expect(finalizeBytes).toBeGreaterThan(0);
    expect(finalizeBytes).toBeLessThan(6 * 1024 * 1024);
    const store = new ObjectStore(stack.s3, stack.bucket);
    const { readFile } = await import("node:fs/promises");
    await store.put("inputs/bundle/ulta.pdf", await readFile("jobs/examples/docs/ULTABEAUTY_2023Q4_EARNINGS.pdf"), "application/pdf");
    const spec = parseJobText("name: bundle\ndocuments:\n  - path: x\nprompt: Summarise.\nthinking: { enabled: true, budget: 512 }\n", "b.yaml");
    const job = await submitJob(
      { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: 3 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "ulta.pdf", uri: s3Uri(stack.bucket, "inputs/bundle/ulta.pdf") }], outputSchema: null },
    );
    const runner = `
      import { ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
      const { handler } = await import(${JSON.stringify(path.join(outDir, "worker-split", "worker.mjs"))});
      const finalizer = await import(${JSON.stringify(outDir + "/finalize.mjs")});
      for (const other of ["submit.mjs", "dlq.mjs"]) {
        const mod = await import(${JSON.stringify(outDir + "/")} + other);
        if (typeof mod.handler !== "function") throw new Error(other + " exports no handler");
      }
      const sqs = new SQSClient({});
      const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: process.env.QUEUE_URL, MaxNumberOfMessages: 1, WaitTimeSeconds: 2, MessageSystemAttributeNames: ["All"] }));
      const m = Messages[0];
      const record = { messageId: m.MessageId, receiptHandle: m.ReceiptHandle, body: m.Body, attributes: m.Attributes, messageAttributes: {}, md5OfBody: m.MD5OfBody, eventSource: "aws:sqs", eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:longdoc-tasks", awsRegion: "us-east-1" };
      const out = await handler({ Records: [record] }, { getRemainingTimeInMillis: () => 900000 });
      // The worker counted the job's last item: it asked the finalizer, whose own invocation ends the job.
      const asked = await sqs.send(new ReceiveMessageCommand({ QueueUrl: process.env.LONGDOC_FINALIZE_URL, MaxNumberOfMessages: 1, WaitTimeSeconds: 2 }));
      const f = asked.Messages[0];
      const ended = await finalizer.handler({ Records: [{ ...record, messageId: f.MessageId, receiptHandle: f.ReceiptHandle, body: f.Body }] });
      console.log(JSON.stringify({ ...out, finalized: ended.batchItemFailures.length === 0 }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", runner], {
      env: {
        PATH: process.env.PATH,
        QUEUE_URL: stack.queueUrl,
        QWEN_BASE_URL: sim.baseURL,
        SST_RESOURCES_JSON: JSON.stringify({
          DashscopeApiKey: { type: "sst.sst.Secret", value: "sk-bundle" },
          WebhookSecret: { type: "sst.sst.Secret", value: "bundle-webhook-secret-0123456789" },
          Runs: { type: "sst.aws.Bucket", name: stack.bucket },
          Tasks: { type: "sst.aws.Queue", url: stack.queueUrl },
          Coord: { type: "sst.aws.Dynamo", name: stack.dynamo.table },
        }),
        LONGDOC_TASKS_URL: stack.queueUrl,
        LONGDOC_FINALIZE_URL: stack.finalizeUrl,
        LONGDOC_EVENTS_TOPIC: stack.topicArn,
        AWS_ENDPOINT_URL_DYNAMODB: stack.dynamo.endpoint,
        AWS_ENDPOINT_URL: stack.endpoint,
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "local",
        AWS_SECRET_ACCESS_KEY: "local",
      },
      timeout: 60_000,
    });
    expect(JSON.parse(stdout.trim().split("\n").pop()!)).toEqual({ batchItemFailures: [], finalized: true });
    const result = await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json"));
    expect(result).toMatchObject({ status: "succeeded", documents: [{ format: "pdf" }] });
    expect(result!.usage.reasoningTokens).toBeGreaterThan(0);
    expect(sim.calls.at(-1)!.documents[0]!.tokens).toBe(result!.documents[0]!.tokens);
    // The job's one item was its last: the bundled finalizer published the job-finished event to the topic.
    expect(await store.getJson(keys.notify(job.jobId))).toMatchObject({ event: { jobId: job.jobId, status: "succeeded" }, topic: { messageId: expect.any(String) } });
  });
});
