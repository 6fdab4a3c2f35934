/**
 * `npm run bench:extract`: text-extraction time and peak memory for
 *   1. the largest PDF of the test corpus (test/corpus/files), and
 *   2. a generated ~100 MB text PDF (written here into a temp dir by a minimal PDF writer:
 *      thousands of letter pages of Helvetica prose, uncompressed, so the file is large).
 *
 * Each case runs in its own child process, so peak RSS (the kernel's maxRSS) is per case.
 * Peak heap is sampled every 10 ms (an approximation: a long synchronous step may peak between
 * samples). Prints a table, then, as the last stdout line, one JSON object with the figures.
 *
 * Options: --mb N  size of the generated PDF in MB (default 100).
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

interface CaseResult {
  case: string;
  file: string;
  fileMB: number;
  pages: number | null;
  chars: number;
  seconds: number;
  mbPerSecond: number;
  peakRssMB: number;
  peakHeapMB: number;
  peakExternalMB: number;
  baselineRssMB: number;
}

const MB = 1024 * 1024;
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

// ---------------------------------------------------------------------------------------------
// Child: load one document and report.

async function child(file: string, label: string): Promise<void> {
  const { loadDocument } = await import("../shared/documents/index.ts");
  const baselineRss = process.memoryUsage().rss;
  let peakHeap = 0;
  let peakExternal = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakExternal = Math.max(peakExternal, m.external + m.arrayBuffers);
  };
  const timer = setInterval(sample, 10);
  const bytes = new Uint8Array(readFileSync(file));
  const t0 = performance.now();
  const doc = await loadDocument({ bytes, name: file });
  const seconds = (performance.now() - t0) / 1000;
  sample();
  clearInterval(timer);
  const result: CaseResult = {
    case: label,
    file,
    fileMB: round(bytes.length / MB, 2),
    pages: doc.pages ?? null,
    chars: doc.chars,
    seconds: round(seconds, 2),
    mbPerSecond: round(bytes.length / MB / seconds, 2),
    peakRssMB: round((process.resourceUsage().maxRSS * 1024) / MB),
    peakHeapMB: round(peakHeap / MB),
    peakExternalMB: round(peakExternal / MB),
    baselineRssMB: round(baselineRss / MB),
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

// ---------------------------------------------------------------------------------------------
// A minimal streaming PDF writer: Helvetica text pages, uncompressed content streams.

const WORDS = (
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they " +
  "you were her she there been one all we their has would when if so what out up into no more other revenue " +
  "segment operating income fiscal quarter statement balance liabilities assets equity shareholders dividend " +
  "pursuant section agreement thereof provided however material adverse effect risk factors management"
).split(" ");

function generatePdf(path: string, targetBytes: number): { pages: number; bytes: number } {
  const fd = openSync(path, "w");
  let pos = 0;
  const offsets: number[] = [];
  const write = (s: string) => {
    const b = Buffer.from(s, "latin1");
    writeSync(fd, b);
    pos += b.length;
  };
  const obj = (n: number, body: string) => {
    offsets[n] = pos;
    write(`${n} 0 obj\n${body}\nendobj\n`);
  };
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const line = () => {
    let s = "";
    while (s.length < 88) s += (s ? " " : "") + WORDS[Math.floor(rand() * WORDS.length)];
    return s;
  };
  write("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
  obj(3, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  // A balanced page tree (64 pages per intermediate node), as real producers write: pdf.js finds
  // a page in a flat /Kids array by walking it, which would make the run quadratic in pages.
  const groups: { obj: number; kids: number[] }[] = [];
  let pages = 0;
  let next = 4;
  while (pos < targetBytes) {
    pages++;
    if ((pages - 1) % 64 === 0) groups.push({ obj: next++, kids: [] });
    const group = groups[groups.length - 1]!;
    const rows: string[] = [];
    for (let i = 0; i < 60; i++) rows.push(`(${line()}) Tj T*`);
    const content = `BT /F1 9 Tf 11.5 TL 50 760 Td\n${rows.join("\n")}\n() Tj T* (Page ${pages}) Tj\nET`;
    const contentObj = next++;
    obj(contentObj, `<< /Length ${content.length} >>\nstream\n${content}\nendstream`);
    const pageObj = next++;
    obj(pageObj, `<< /Type /Page /Parent ${group.obj} 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${contentObj} 0 R >>`);
    group.kids.push(pageObj);
  }
  for (const g of groups) obj(g.obj, `<< /Type /Pages /Parent 2 0 R /Kids [${g.kids.map((n) => `${n} 0 R`).join(" ")}] /Count ${g.kids.length} >>`);
  obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
  obj(2, `<< /Type /Pages /Kids [${groups.map((g) => `${g.obj} 0 R`).join(" ")}] /Count ${pages} >>`);
  const xref = pos;
  const entries = [`xref\n0 ${next}\n0000000000 65535 f \n`];
  for (let n = 1; n < next; n++) entries.push(`${String(offsets[n]).padStart(10, "0")} 00000 n \n`);
  write(entries.join(""));
  write(`trailer\n<< /Size ${next} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  closeSync(fd);
  return { pages, bytes: pos };
}

// ---------------------------------------------------------------------------------------------
// Parent.

function runCase(file: string, label: string): CaseResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", file, label], { encoding: "utf8", maxBuffer: 16 * MB });
  if (r.status !== 0) throw new Error(`case ${label} failed (exit ${r.status}):\n${r.stderr}`);
  const last = r.stdout.trim().split("\n").pop()!;
  return JSON.parse(last) as CaseResult;
}

function table(rows: CaseResult[]): string {
  const head = ["case", "file MB", "pages", "chars", "seconds", "MB/s", "peak RSS MB", "peak heap MB", "peak ext MB", "base RSS MB"];
  const body = rows.map((r) => [r.case, r.fileMB, r.pages ?? "-", r.chars, r.seconds, r.mbPerSecond, r.peakRssMB, r.peakHeapMB, r.peakExternalMB, r.baselineRssMB].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [fmt(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(fmt)].join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") return child(args[1]!, args[2]!);
  const mbArg = args.indexOf("--mb");
  const targetMB = mbArg >= 0 ? Number(args[mbArg + 1]) : 100;

  const corpus = fileURLToPath(new URL("../test/corpus/files/", import.meta.url));
  const pdfs = readdirSync(corpus).filter((f) => f.endsWith(".pdf")).map((f) => ({ f, size: statSync(join(corpus, f)).size }));
  pdfs.sort((a, b) => b.size - a.size);
  // The largest one that has text (the corpus also holds scanned / encrypted / corrupt samples).
  const manifest = JSON.parse(readFileSync(join(corpus, "..", "MANIFEST.json"), "utf8")) as { files: { path: string; expect: string }[] };
  const textual = new Set(manifest.files.filter((x) => x.expect === "text").map((x) => x.path.replace(/^files\//, "")));
  const largest = pdfs.find((p) => textual.has(p.f))!;

  const dir = mkdtempSync(join(tmpdir(), "longdoc-bench-extract-"));
  try {
    const genPath = join(dir, `generated-${targetMB}mb.pdf`);
    const t0 = performance.now();
    const gen = generatePdf(genPath, targetMB * 1000 * 1000);
    process.stdout.write(`generated ${genPath}: ${round(gen.bytes / MB)} MiB, ${gen.pages} pages in ${round((performance.now() - t0) / 1000)} s\n\n`);
    const results = [runCase(join(corpus, largest.f), `corpus: ${largest.f}`), runCase(genPath, `generated ${targetMB} MB PDF`)];
    process.stdout.write(table(results) + "\n\n");
    process.stdout.write(JSON.stringify({ bench: "extract", node: process.version, cases: results.map(({ file: _f, ...r }) => r) }) + "\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
