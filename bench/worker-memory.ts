/**
 * Peak memory of one worker handling one document, side by side for a small and a ~250,000-token
 * document. The emulator and the simulator run in this process; each worker runs in a fresh
 * child process (the real handler fed by the Lambda-style poller), so its peak RSS is its own.
 *
 *   npm run bench:worker-memory
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ObjectStore } from "../shared/run/store.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { createWorkerDeps } from "../shared/worker/deps.ts";
import { createWorkerHandler } from "../shared/worker/handlers.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { silentLog } from "../shared/log.ts";
import { runPoller } from "../shared/local/poller.ts";
import { dynamoClient, localClients } from "../shared/local/clients.ts";
import { startLocalStack } from "../shared/local/stack.ts";
import { createCoordinator } from "../shared/run/coord.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { startSimulator } from "../shared/sim/index.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { countTokens } from "../shared/tokens/index.ts";

const MiB = 1024 * 1024;

if (process.argv[2] === "child") {
  // One worker process: handle one task, then report peak RSS (KiB from resourceUsage).
  const { endpoint, queueUrl, baseURL, dynamo, table } = JSON.parse(process.argv[3]!) as { endpoint: string; queueUrl: string; baseURL: string; dynamo: string; table: string };
  const { s3, sqs } = localClients(endpoint);
  const deps = createWorkerDeps({ s3, sqs, queueUrl, coord: createCoordinator(dynamoClient(dynamo), table), catalog: loadCatalog(), log: silentLog, apiKey: "sk-bench", baseURL });
  const handler = createWorkerHandler(() => deps);
  const stop = new AbortController();
  const baseline = process.memoryUsage().rss;
  await runPoller({
    sqs,
    queueUrl,
    batchSize: 1,
    waitTimeS: 1,
    functionTimeoutMs: 900_000,
    signal: stop.signal,
    handler: async (event, ctx) => {
      const r = await handler(event, ctx);
      stop.abort();
      return r;
    },
  });
  process.stdout.write(JSON.stringify({ baselineRssMiB: baseline / MiB, peakRssMiB: (process.resourceUsage().maxRSS * 1024) / MiB }) + "\n");
  process.exit(0);
}

const paragraph = (i: number) =>
  `Note ${i}. Revenue in segment ${i % 17} rose ${(i * 7) % 23}.${i % 10}% to $${1000 + i * 13} million; operating margin ${(10 + (i % 9)).toFixed(1)}% ` +
  `against ${(9 + (i % 7)).toFixed(1)}% a year earlier, as pricing offset input costs in region ${i % 5} and the backlog grew by ${(i * 11) % 97} units.\n\n`;

function documentOf(targetTokens: number): string {
  let text = "# Generated annual report\n\n";
  let i = 0;
  while (countTokens(text) < targetTokens) {
    const chunk = Array.from({ length: 500 }, () => paragraph(i++)).join("");
    text += chunk;
  }
  // Trim back under the target by whole paragraphs.
  while (countTokens(text) > targetTokens) text = text.slice(0, text.lastIndexOf("Note "));
  return text;
}

const stack = await startLocalStack();
const sim = await startSimulator({ port: 0 });
const store = new ObjectStore(stack.s3, stack.bucket);
const catalog = loadCatalog();
const spec = parseJobText("name: bench\ndocuments:\n  - path: x\nprompt: Summarise.\nmaxOutputTokens: 1024\n", "bench.yaml");
const dir = await mkdtemp(path.join(tmpdir(), "longdoc-bench-"));
const self = fileURLToPath(import.meta.url);
const rows: { case: string; docMiB: number; tokens: number; baselineRssMiB: number; peakRssMiB: number; status: string }[] = [];

for (const [label, target] of [["small (25k tokens)", 25_000], ["large (250k tokens)", 250_000]] as const) {
  const text = documentOf(target);
  const file = path.join(dir, `${target}.md`);
  await writeFile(file, text);
  const key = `inputs/bench/${target}.md`;
  await store.put(key, text, "text/markdown");
  const job = await submitJob(
    { store, sqs: stack.sqs, queueUrl: stack.queueUrl, maxReceives: stack.maxReceives },
    { spec, model: getModel(catalog, "qwen3-max"), documents: [{ source: `${target}.md`, uri: s3Uri(stack.bucket, key) }], outputSchema: null },
  );
  // Asynchronously: this process serves the emulator and the simulator the child talks to.
  const { stdout: out } = await promisify(execFile)(process.execPath, [self, "child", JSON.stringify({ endpoint: stack.endpoint, queueUrl: stack.queueUrl, baseURL: sim.baseURL, dynamo: stack.dynamo.endpoint, table: stack.dynamo.table })], { encoding: "utf8" });
  const measured = JSON.parse(out.trim().split("\n").pop()!) as { baselineRssMiB: number; peakRssMiB: number };
  const result = await store.getJson<ItemResult>(`runs/${job.jobId}/items/${job.items[0]!.id}/result.json`);
  rows.push({ case: label, docMiB: Buffer.byteLength(text) / MiB, tokens: result?.documents[0]?.tokens ?? countTokens(text), ...measured, status: result?.status ?? "none" });
}
await sim.stop();
await stack.stop();

const f = (n: number) => n.toFixed(1);
console.log("case                  doc MiB   tokens   baseline RSS MiB   peak RSS MiB   status");
for (const r of rows) {
  console.log(`${r.case.padEnd(20)}  ${f(r.docMiB).padStart(7)}  ${String(r.tokens).padStart(7)}  ${f(r.baselineRssMiB).padStart(17)}  ${f(r.peakRssMiB).padStart(13)}   ${r.status}`);
}
const [small, large] = rows;
console.log(`peak RSS, large vs small: ${(large!.peakRssMiB / small!.peakRssMiB).toFixed(2)}x; large over its own baseline: +${f(large!.peakRssMiB - large!.baselineRssMiB)} MiB (worker memory setting: 2048 MiB)`);
console.log(JSON.stringify({ bench: "worker-memory", rows, largeOverSmall: large!.peakRssMiB / small!.peakRssMiB }));
