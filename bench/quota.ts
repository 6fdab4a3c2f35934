/**
 * The quota is the speed limit: the same job against a simulator that enforces 300 RPM (and
 * 5 requests per second), run side by side with longdoc's limiter set to the quota and with the
 * limiter effectively off (a quota far above the provider's). Prints achieved requests per
 * minute as a share of the quota, the 429s the provider returned, and wall time.
 *
 *   npm run bench:quota
 */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import { startLocalStack } from "../shared/local/stack.ts";
import { startSimulator } from "../shared/sim/index.ts";
import { loadSettings } from "../shared/settings.ts";

const RPM = 300;
const ITEMS = 40;
const WORKERS = 8;

const dir = await mkdtemp(path.join(tmpdir(), "longdoc-bench-quota-"));
await mkdir(path.join(dir, "docs"));
await Promise.all(Array.from({ length: ITEMS }, (_, i) => writeFile(path.join(dir, "docs", `n${i}.md`), `# Note ${i}\n\nCash rose ${i}%.\n`)));

const rows: { mode: string; seconds: number; calls: number; refused429: number; codes: string; achievedRpm: number; shareOfQuota: number; succeeded: number }[] = [];
for (const [mode, limit] of [["longdoc limiter at the quota", RPM], ["limiter off (quota x100)", RPM * 100]] as const) {
  const stack = await startLocalStack({ visibilityTimeoutS: 2 });
  const sim = await startSimulator({ port: 0, rpm: RPM });
  const jobFile = path.join(dir, `job-${limit}.yaml`);
  await writeFile(jobFile, `name: quota-bench\ndocuments:\n  - path: docs/*.md\nprompt: Summarise.\nmaxOutputTokens: 256\nlimits: { rpm: ${limit}, tpm: 100000000 }\n`);
  const started = Date.now();
  const run = await runLocalJob({
    jobFile,
    outDir: path.join(dir, "out"),
    workers: WORKERS,
    settings: loadSettings({ DASHSCOPE_API_KEY: "sk-bench", QWEN_BASE_URL: sim.baseURL }),
    log: silentLog,
    stack,
    retry: { retries: 6, minTimeoutMs: 500 },
  });
  const seconds = (Date.now() - started) / 1000;
  const ok = sim.calls.filter((c) => c.status === 200);
  const span = ok.length > 1 ? (ok.at(-1)!.receivedAt - ok[0]!.receivedAt) / 60_000 : 1;
  const achievedRpm = ok.length > 1 ? (ok.length - 1) / span : 0;
  rows.push({
    mode,
    seconds,
    calls: sim.calls.length,
    refused429: sim.calls.filter((c) => c.status === 429).length,
    codes: [...new Set(sim.calls.filter((c) => c.status === 429).map((c) => c.errorCode))].join(" "),
    achievedRpm,
    shareOfQuota: achievedRpm / RPM,
    succeeded: run.manifest.counts.succeeded,
  });
  await sim.stop();
  await stack.stop();
}

console.log(`${ITEMS} items, ${WORKERS} workers, provider quota ${RPM} RPM (${RPM / 60}/s)`);
console.log("mode                            seconds  calls  429s  achieved RPM  share of quota  succeeded  429 codes");
for (const r of rows) {
  console.log(
    `${r.mode.padEnd(30)}  ${r.seconds.toFixed(1).padStart(7)}  ${String(r.calls).padStart(5)}  ${String(r.refused429).padStart(4)}  ${r.achievedRpm.toFixed(0).padStart(12)}  ${(r.shareOfQuota * 100).toFixed(1).padStart(13)}%  ${String(r.succeeded).padStart(9)}  ${r.codes}`,
  );
}
console.log(JSON.stringify({ bench: "quota", quotaRpm: RPM, items: ITEMS, workers: WORKERS, rows }));
