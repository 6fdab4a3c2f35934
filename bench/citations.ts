/**
 * `npm run bench:citations`: how long checking an answer's citations takes (`citations: verify`,
 * shared/citations), on
 *   1. the 3M 2018 10-K of the test corpus (160 pages), and
 *   2. a document of at least 250,000 tokens: the 3M and Boeing 10-Ks' pages end to end,
 *      numbered on as one document (`--- page 1 ---` … `--- page 350 ---`).
 *
 * The answer cites 60 passages of the document taken from its pages: 40 on their page, 10 on
 * another page, 10 invented. Each case reports the time to index the document (split and fold,
 * once per item) and to check the whole answer (index included), median of 7 runs after a warm-up.
 * Prints a table, then, as the last stdout line, one JSON object with the figures.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadDocument } from "../shared/documents/index.ts";
import { indexDocument, splitPlaces, verifyCitations, type CitedDocument } from "../shared/citations/index.ts";
import { countTokens } from "../shared/tokens/index.ts";
import { median } from "./median.ts";

const CORPUS = join(import.meta.dirname, "..", "test", "corpus", "files");
const RUNS = 7;
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

async function extract(file: string): Promise<string> {
  return (await loadDocument({ bytes: new Uint8Array(readFileSync(join(CORPUS, file))), name: file })).text;
}

/** Pages of several PDFs' texts as one document, numbered on. */
function joinPages(texts: string[]): string {
  const pages = texts.flatMap((t) => splitPlaces(t).places.map((p) => p.text.replace(/^\n+|\n+$/g, "")));
  return pages.map((t, i) => `--- page ${i + 1} ---\n${t}`).join("\n\n") + "\n";
}

/** 60 citations over the document's pages: 40 right, 10 on the wrong page, 10 invented. */
function answerFor(text: string): string {
  const pages = splitPlaces(text).places;
  const lines: string[] = [];
  const quoteOn = (k: number) => {
    for (let step = 0; step < pages.length; step++) {
      const page = pages[(k * 37 + step) % pages.length]!;
      const line = page.text.split("\n").find((l) => l.split(/\s+/).length >= 8 && !/["\]]/.test(l));
      if (line) return { page: page.label as number, quote: line.trim().split(/\s+/).slice(0, 10).join(" ") };
    }
    throw new Error("no quotable line");
  };
  for (let k = 0; k < 60; k++) {
    const { page, quote } = quoteOn(k);
    if (k % 6 === 4) lines.push(`Claim ${k} [p. ${(page % pages.length) + 1}: "${quote}"].`);
    else if (k % 6 === 5) lines.push(`Claim ${k} [p. ${page}: "an invented passage number ${k} that no filing contains"].`);
    else lines.push(`Claim ${k} [p. ${page}: "${quote}"].`);
  }
  return lines.join("\n");
}

function time(fn: () => unknown): number {
  fn();
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

const cases: { case: string; text: string }[] = [];
const threeM = await extract("3M_2018_10K.pdf");
cases.push({ case: "3M 2018 10-K", text: threeM });
cases.push({ case: "3M + Boeing 10-Ks as one document", text: joinPages([threeM, await extract("BOEING_2022_10K.pdf")]) });

const results = cases.map((c) => {
  const doc: CitedDocument = { source: "bench.pdf", text: c.text };
  const answer = answerFor(c.text);
  const check = verifyCitations(answer, [doc]);
  return {
    case: c.case,
    pages: splitPlaces(c.text).places.length,
    tokens: countTokens(c.text),
    chars: c.text.length,
    citations: check.total,
    supported: check.supported,
    wrongPage: check.wrongPage,
    notFound: check.notFound,
    indexMs: round(time(() => indexDocument(doc))),
    verifyMs: round(time(() => verifyCitations(answer, [doc]))),
  };
});

const header = ["case", "pages", "tokens", "citations", "supported/wrong/not found", "index ms", "check ms (index included)"];
const rows = results.map((r) => [r.case, r.pages, r.tokens, r.citations, `${r.supported}/${r.wrongPage}/${r.notFound}`, r.indexMs, r.verifyMs].map(String));
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  "));
console.log(JSON.stringify({ bench: "citations", runs: RUNS, results }));
