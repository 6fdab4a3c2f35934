/**
 * Child-process entry for memory tests: loads one document with loadDocument and prints one JSON
 * line: {code, message, chars, ms, maxRssMiB} (code/message when it failed; maxRssMiB the peak
 * resident memory, from /proc/self/status on Linux). Run it with
 * `node test/helpers/extract-peak.ts <file> [maxTokens]`, so the peak is this document's alone.
 */
import { readFileSync } from "node:fs";
import { loadDocument } from "../../shared/documents/index.ts";
import { LongdocError } from "../../shared/errors.ts";

const [file, maxTokens] = process.argv.slice(2);
const bytes = new Uint8Array(readFileSync(file!));
const t0 = performance.now();
const out: Record<string, unknown> = {};
try {
  const doc = await loadDocument({ bytes, name: file! }, maxTokens ? { maxTokens: Number(maxTokens) } : {});
  out.chars = doc.chars;
} catch (e) {
  out.code = LongdocError.is(e) ? e.code : "thrown";
  out.message = e instanceof Error ? e.message : String(e);
}
out.ms = Math.round(performance.now() - t0);
// VmHWM is this process's own peak; getrusage's maxRSS also holds the parent's at fork (Linux
// carries it across exec), which in a test runner is the runner's.
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
out.maxRssMiB = Math.round(Number(hwm ?? process.resourceUsage().maxRSS) / 1024);
process.stdout.write(JSON.stringify(out) + "\n");
