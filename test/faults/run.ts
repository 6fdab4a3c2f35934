/**
 * `npm run test:faults`: the fault suite (test/faults/suite.ts) over the local fleet, then the
 * matrix (fault, count injected, items affected, outcome) and, as the last stdout line, one JSON
 * object: items, lost, duplicateSuccessfulCalls, partialDebris, dlqMessages, keyLeaks, faults...
 * Exit 0 when nothing was lost, paid twice, left behind, leaked or over quota and every item
 * ended as it should; 1 otherwise.
 *
 *   npm run test:faults              (200 + 20 items, every fault kind, a few minutes)
 *   npm run test:faults -- --small   (40 + 6 items, fewer kinds, under a minute; what npm test runs)
 *   npm run test:faults -- --clean   (the full run's jobs with no fault injected: its throughput, for comparison)
 *   npm run test:faults -- --case worker-replacement,sigterm-resume   (only these cases of test/faults/cases.ts)
 *
 * The full run ends with the cases of test/faults/cases.ts, which drive `longdoc run` itself:
 * every worker process killed mid-run, and SIGTERM mid-run then a resume.
 *
 * The suite runs in a child process whose output (the worker processes' logs at level info
 * included) is captured here, so the API key can be looked for in every log line too.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CASES, type CaseName, type CaseResult } from "./cases.ts";
import { CLEAN, FULL, runFaultSuite, SMALL, type SuiteResult } from "./suite.ts";

const small = process.argv.includes("--small");
const clean = process.argv.includes("--clean");
const name = small ? "small" : clean ? "clean" : "full";
const caseArg = process.argv.indexOf("--case");
const onlyCases = caseArg > 0 ? (process.argv[caseArg + 1] ?? "").split(",").filter(Boolean) : null;
for (const c of onlyCases ?? []) {
  if (!(c in CASES)) {
    console.error(`unknown case '${c}'; the cases are: ${Object.keys(CASES).join(", ")}`);
    process.exit(2);
  }
}
if (onlyCases?.length === 0) {
  console.error(`--case needs one or more names, comma-separated: ${Object.keys(CASES).join(", ")}`);
  process.exit(2);
}

/** Runs the named cases one after the other and prints a line each; true when every check held. */
async function runCases(names: CaseName[]): Promise<{ results: CaseResult[]; ok: boolean }> {
  const results: CaseResult[] = [];
  for (const n of names) {
    process.stderr.write(`faults: case ${n}\n`);
    const r = await CASES[n]().catch((e: unknown): CaseResult => ({ name: n, items: 0, elapsedS: 0, paidTwice: 0, problems: [`crashed: ${String(e)}`], details: {} }));
    results.push(r);
    console.log(`case ${n}: ${r.items} items, ${r.elapsedS.toFixed(1)} s, paid twice ${r.paidTwice}: ${r.problems.length ? r.problems.join("; ") : "every check held"}`);
  }
  return { results, ok: results.every((r) => r.problems.length === 0 && r.paidTwice === 0) };
}

if (onlyCases) {
  const { results, ok } = await runCases(onlyCases as CaseName[]);
  console.log(JSON.stringify({ cases: results.map(({ details: _d, ...r }) => r), ok }));
  process.exit(ok ? 0 : 1);
}

if (process.argv[2] === "inner") {
  const result = await runFaultSuite(small ? SMALL : clean ? CLEAN : FULL, (line) => process.stderr.write(`faults: ${line}\n`));
  const { writeFile } = await import("node:fs/promises");
  await writeFile(process.env.FAULT_SUITE_RESULT!, JSON.stringify(result));
  process.exit(0);
}

const dir = await mkdtemp(path.join(tmpdir(), "longdoc-faults-run-"));
const resultFile = path.join(dir, "result.json");
const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "inner", ...process.argv.slice(2)], {
  env: { ...process.env, FAULT_SUITE_RESULT: resultFile },
  stdio: ["ignore", "pipe", "pipe"],
});
const logs: Buffer[] = [];
let logLines = 0;
for (const stream of [child.stdout, child.stderr]) {
  stream.on("data", (d: Buffer) => {
    logs.push(d);
    for (const line of d.toString("utf8").split("\n")) {
      if (line) logLines++;
      if (line.startsWith("faults: ")) process.stderr.write(`${line}\n`);
    }
  });
}
const stop = () => child.kill("SIGTERM");
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
let result: SuiteResult;
try {
  result = JSON.parse(await readFile(resultFile, "utf8")) as SuiteResult;
} catch {
  process.stderr.write(Buffer.concat(logs).toString("utf8").split("\n").slice(-40).join("\n"));
  console.error(`the fault suite ended (exit ${code}) without a result`);
  process.exit(1);
}
await rm(dir, { recursive: true, force: true });

const allLogs = Buffer.concat(logs).toString("utf8");
const logLeaks = allLogs.split("\n").filter((l) => l.includes(result.apiKey)).length;
const poisonLogged = allLogs.split("\n").filter((l) => l.includes("fault-suite-poison") && l.includes("message dropped")).length;

const w = [44, 9, 8];
console.log(`${name} fault suite: ${result.items} items, ${result.elapsedS.toFixed(1)} s, ${logLines} log lines scanned`);
console.log(`${"fault".padEnd(w[0]!)} ${"injected".padStart(w[1]!)} ${"items".padStart(w[2]!)}  outcome`);
for (const r of result.matrix) console.log(`${r.fault.padEnd(w[0]!)} ${String(r.injected).padStart(w[1]!)} ${String(r.itemsAffected).padStart(w[2]!)}  ${r.outcome}`);
const keyLeaks = result.keyLeaks + logLeaks;
const d = result.details as { problems: string[]; wrong: unknown[]; debris: string[]; leaks: string[]; leftInQueue: number };
for (const p of d.problems) console.log(`problem: ${p}`);
for (const x of d.wrong) console.log(`wrong outcome: ${JSON.stringify(x)}`);
for (const x of d.debris) console.log(`debris: ${x}`);
for (const x of d.leaks) console.log(`key found in: ${x}`);
if (logLeaks) console.log(`key found in ${logLeaks} log lines`);
// The cases that drive `longdoc run` itself belong to the full run only (the small one is inside npm test).
const cases = name === "full" ? await runCases(Object.keys(CASES) as CaseName[]) : { results: [], ok: true };
const ok =
  cases.ok &&
  result.lost === 0 &&
  result.notInManifest === 0 &&
  result.duplicateSuccessfulCalls === 0 &&
  result.partialDebris === 0 &&
  result.dlqMessages === 0 &&
  keyLeaks === 0 &&
  !result.quotaExceeded &&
  result.wrongOutcomes === 0 &&
  d.problems.length === 0 &&
  d.leftInQueue === 0;
console.log(ok ? "every check held" : "SOME CHECKS FAILED (see above)");
const { apiKey: _key, matrix: _matrix, ...figures } = result;
console.log(`main job: ${result.throughput.mainMakespanS} s, ${result.throughput.mainItemsPerMinute} items/min; ${result.throughput.answeredPerMinute} answered requests/min against a quota of ${result.throughput.rpm}`);
console.log(JSON.stringify({ suite: name, ...figures, cases: cases.results.map(({ details: _d, ...r }) => r), keyLeaks, logKeyLeaks: logLeaks, poisonDroppedAndLogged: poisonLogged, ok }));
process.exit(ok ? 0 : 1);
