/**
 * Documents that cannot fit the model, or that cost memory or time out of proportion to what
 * they hold: a DOCX of 100 MiB of text, a body of too many elements, a text beyond the model by
 * a lower bound on its tokens, a PDF of empty pages, deeply nested HTML.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { inflateRawSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { loadDocument } from "../shared/documents/index.ts";
import { MAX_BODY_XML_BYTES, MAX_BODY_XML_ELEMENTS } from "../shared/documents/docx.ts";
import { MAX_CELLS } from "../shared/documents/xlsx.ts";
import { htmlToText } from "../shared/documents/html.ts";
import { splitPlaces } from "../shared/citations/places.ts";
import { LongdocError } from "../shared/errors.ts";
import { parseJobText } from "../shared/job/load.ts";
import { loadCatalog } from "../shared/model/catalog.ts";
import { estimateJob } from "../shared/submit/estimate.ts";
import { countLetters, MAX_BYTES_PER_TOKEN, MAX_LETTERS_PER_TOKEN, minTokens, TokenFloor } from "../shared/tokens/bound.ts";
import { countTokens } from "../shared/tokens/index.ts";
import data from "../shared/tokens/qwen3-data.json" with { type: "json" };
import { s3Uri } from "../shared/job/record.ts";
import { getModel } from "../shared/model/catalog.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { ROOT } from "./helpers/cli.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";
import { makeDocx, makePdf, makeXlsx } from "./helpers/make-documents.ts";

const MiB = 1024 * 1024;
const dir = mkdtempSync(path.join(tmpdir(), "longdoc-limits-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Loads `file` in a child process (its own peak memory): see test/helpers/extract-peak.ts. */
async function extractInChild(file: string, maxTokens?: number): Promise<{ code?: string; message?: string; chars?: number; ms: number; maxRssMiB: number }> {
  const args = ["test/helpers/extract-peak.ts", file, ...(maxTokens ? [String(maxTokens)] : [])];
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: ROOT, timeout: 120_000 });
  return JSON.parse(stdout);
}

/** `n` bytes of "aaaaa aaaaa ..." (the text of the DOCX bomb). */
function words(n: number): Uint8Array {
  const b = new Uint8Array(n).fill(0x61);
  for (let i = 5; i < n; i += 6) b[i] = 0x20;
  return b;
}

function oneRunBody(text: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode('<w:p><w:r><w:t xml:space="preserve">');
  const tail = new TextEncoder().encode("</w:t></w:r></w:p>");
  const out = new Uint8Array(head.length + text.length + tail.length);
  out.set(head);
  out.set(text, head.length);
  out.set(tail, head.length + text.length);
  return out;
}

async function loadErr(bytes: Uint8Array, name: string, opts?: Parameters<typeof loadDocument>[1]): Promise<LongdocError> {
  try {
    await loadDocument({ bytes, name }, opts);
  } catch (e) {
    if (LongdocError.is(e)) return e;
    throw e;
  }
  throw new Error(`${name} loaded without an error`);
}

/** The DOCX bomb on disk (written once): 100 MiB of text in one run, under 1 MiB zipped. */
const bombFile = (() => {
  let file: string | undefined;
  return () => {
    if (file) return file;
    const docx = makeDocx(oneRunBody(words(100 * MiB)));
    expect(docx.length).toBeLessThan(1 * MiB);
    file = path.join(dir, "bomb.docx");
    writeFileSync(file, docx);
    return file;
  };
})();

describe("a DOCX bomb: 100 MiB of text in one run, honestly declared", () => {
  it("is refused from its declared size, before inflating, in little memory and time", async () => {
    const file = bombFile();
    const r = await extractInChild(file);
    expect(r.code).toBe("document_too_large");
    expect(r.message).toMatch(/bomb\.docx: its body \(word\/document\.xml and notes\) declares 100 MiB \(\d+ bytes\) of XML, over the 32 MiB \(33554432 bytes\) longdoc reads from a DOCX/);
    // A bare Node with the loaders imported peaks near 100 MiB; on main this took 6 GB and minutes.
    expect(r.maxRssMiB).toBeLessThan(250);
    expect(r.ms).toBeLessThan(5_000);
  });

  it("estimate lists it as the item's error instead of dying (RangeError on main)", async () => {
    const job = path.join(dir, "bomb.yaml");
    const yaml = "name: bomb\ndocuments:\n  - path: bomb.docx\n  - path: small.md\nprompt: Summarise.\n";
    writeFileSync(path.join(dir, "small.md"), "# Memo\n\nCash rose.\n");
    bombFile();
    writeFileSync(job, yaml);
    const e = await estimateJob(parseJobText(yaml, job), job, loadCatalog());
    expect(e.items.map((i) => i.error?.kind ?? null)).toEqual(["document_too_large", null]);
    expect(e.items[0]!.error!.message).toMatch(/bomb\.docx: its body .* declares 100 MiB/);
  });

  it("a body just under the declared cap but over the element cap is refused before mammoth runs", async () => {
    const runs = Math.ceil(MAX_BODY_XML_ELEMENTS / 2) + 1000; // w:r and w:t per run
    const body = `<w:p>${'<w:r><w:t xml:space="preserve">ab </w:t></w:r>'.repeat(runs)}</w:p>`;
    const file = path.join(dir, "elements.docx");
    writeFileSync(file, makeDocx(body));
    const r = await extractInChild(file);
    expect(r.code).toBe("document_too_large");
    expect(r.message).toMatch(new RegExp(`its body has \\d+ XML elements, over the ${MAX_BODY_XML_ELEMENTS} longdoc reads from a DOCX`));
    // mammoth would hold ~2 KB per element here (over 800 MB).
    expect(r.maxRssMiB).toBeLessThan(300);
  });

  it("with the model's limit given, a DOCX whose text cannot fit fails as input_too_long before extraction", async () => {
    const text = words(6 * MiB);
    const file = path.join(dir, "long.docx");
    writeFileSync(file, makeDocx(oneRunBody(text)));
    const limit = 100_000;
    const r = await extractInChild(file, limit);
    expect(r.code).toBe("input_too_long");
    const atLeast = Number(/at least (\d+) tokens/.exec(r.message!)?.[1]);
    expect(r.message).toContain(`over the ${limit} tokens the model can take as input`);
    // The lower bound holds: the text's exact count is above it.
    expect(atLeast).toBeGreaterThan(limit);
    expect(countTokens(new TextDecoder().decode(text))).toBeGreaterThanOrEqual(atLeast);
    // Without a limit the same document is extracted in full by mammoth: more memory and time.
    const full = await extractInChild(file);
    expect(full.chars).toBeGreaterThan(6 * MiB - 10);
    expect(r.maxRssMiB).toBeLessThan(full.maxRssMiB);
    expect(r.ms).toBeLessThan(full.ms);
  });

  it("a body over the cap but a ZIP within maxUncompressedBytes: the caps are reported in that order", async () => {
    // The whole archive's cap is checked first (its message is the one users know).
    const e = await loadErr(makeDocx(oneRunBody(words(MAX_BODY_XML_BYTES + 1024))), "big.docx", { maxUncompressedBytes: 16 * MiB });
    expect(e.code).toBe("document_too_large");
    expect(e.message).toMatch(/maxUncompressedBytes/);
  });
});

describe("an XLSX that exceljs could not hold in a worker's memory", () => {
  it("worksheets declaring more XML than the cap are refused before inflating", async () => {
    const row = (r: number) => `<row r="${r}">${Array.from({ length: 10 }, (_, c) => `<c r="${"ABCDEFGHIJ"[c]}${r}" t="inlineStr"><is><t>v${r}x${c}</t></is></c>`).join("")}</row>`;
    const file = path.join(dir, "big.xlsx");
    writeFileSync(file, makeXlsx(Array.from({ length: 62_000 }, (_, i) => row(i + 1)).join("")));
    const r = await extractInChild(file);
    expect(r.code).toBe("document_too_large");
    expect(r.message).toMatch(/big\.xlsx: its worksheets and shared strings declare 3\d\.\d MiB \(\d+ bytes\) of XML, over the 32 MiB/);
    // exceljs held 677 MB for 550,000 cells (30 MiB): this one is never given to it.
    expect(r.maxRssMiB).toBeLessThan(250);
  }, 60_000);

  it("more cells than the cap, in little XML, are refused before exceljs runs", async () => {
    const file = path.join(dir, "cells.xlsx");
    const rows = Math.ceil((MAX_CELLS + 1000) / 20);
    writeFileSync(file, makeXlsx(Array.from({ length: rows }, (_, i) => `<row r="${i + 1}">${"<c/>".repeat(20)}</row>`).join("")));
    const r = await extractInChild(file);
    expect(r.code).toBe("document_too_large");
    expect(r.message).toMatch(new RegExp(`its worksheets have \\d+ cells, over the ${MAX_CELLS} longdoc reads from an XLSX`));
    expect(r.maxRssMiB).toBeLessThan(250);
  }, 60_000);
});

describe("the worker refuses a document that cannot fit before extracting it, and calls no model", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });

  it("input_too_long with the bound and the model's limit; with truncate: middle it is extracted and cut instead", async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    // 3 MiB of text in one run: over 500,000 tokens by the bound, under every size cap.
    await store.put("inputs/long/long.docx", makeDocx(oneRunBody(words(3 * MiB))), "application/octet-stream");
    const submit = (yaml: string) =>
      submitJob(
        { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 3 },
        { spec: parseJobText(yaml, "long.yaml"), model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "long.docx", uri: s3Uri(loop.stack.bucket, "inputs/long/long.docx") }], outputSchema: null },
      );
    const calls = loop.sim.calls.length;
    const job = await submit("name: long\ndocuments:\n  - path: x\nprompt: Summarise.\n");
    await loopbackWorker(loop)(600_000);
    const result = await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json"));
    expect(result).toMatchObject({ status: "failed", error: { kind: "input_too_long" } });
    expect(result!.error!.message).toMatch(/^long\.docx: its text has at least \d+ tokens \(a lower bound, found before extracting it in full\), over the 258048 tokens/);
    expect(loop.sim.calls.length).toBe(calls);

    const cut = await submit("name: long-cut\ndocuments:\n  - path: x\nprompt: Summarise.\ntruncate: middle\n");
    await loopbackWorker(loop)(600_000);
    const kept = await store.getJson<ItemResult>(keys.item(cut.jobId, cut.items[0]!.id, "result.json"));
    expect(kept).toMatchObject({ status: "succeeded" });
    expect(loop.sim.calls.length).toBe(calls + 1);
  }, 120_000);
});

describe("a lower bound on tokens, without tokenizing", () => {
  /** Every merged token's bytes, rebuilt from the committed tokenizer data. */
  function vocabulary(): string[] {
    const payload = inflateRawSync(Buffer.from(data.payload, "base64"));
    const n = data.mergeCount;
    const ids = 256 + 2 * n;
    const idAt = (k: number) => payload[k]! | (payload[ids + k]! << 8) | (payload[2 * ids + k]! << 16);
    const bytes = new Map<number, number[]>();
    for (let b = 0; b < 256; b++) bytes.set(idAt(b), [b]);
    for (let i = 0; i < n; i++) bytes.set(256 + i, [...bytes.get(idAt(256 + i))!, ...bytes.get(idAt(256 + n + i))!]);
    const dec = new TextDecoder();
    return [...[...bytes.values()].map((b) => dec.decode(Uint8Array.from(b))), ...data.addedTokens.map((t) => t.content)];
  }

  it("a plain text far over the limit fails as input_too_long before anyone counts it; one near it is left to the exact count", async () => {
    const prose = (n: number) => new TextEncoder().encode("The quick brown fox jumps over the lazy dog. ".repeat(n));
    const far = await loadErr(prose(50_000), "far.md", { maxTokens: 100_000 }); // 2.2 MB, about 500,000 tokens
    expect(far.code).toBe("input_too_long");
    expect(far.message).toMatch(/^far\.md: its text has at least \d+ tokens .*over the 100000 tokens/);
    // 450,000 characters: under five per token of the limit, so not bounded here (the planner counts it exactly).
    expect((await loadDocument({ bytes: prose(10_000), name: "near.md" }, { maxTokens: 100_000 })).chars).toBe(450_000);
  });

  it("no token of the vocabulary holds more letters or bytes than the bound assumes, nor a number beside anything", () => {
    let letters = 0;
    let bytes = 0;
    for (const t of vocabulary()) {
      letters = Math.max(letters, countLetters(t));
      bytes = Math.max(bytes, new TextEncoder().encode(t).length);
    }
    expect(letters).toBe(MAX_LETTERS_PER_TOKEN);
    expect(bytes).toBeLessThanOrEqual(MAX_BYTES_PER_TOKEN);
  });

  it("is never above the exact count, on text of every kind", () => {
    const texts = [
      "The quick brown fox jumps over the lazy dog. ".repeat(200),
      "本公司二〇二五年实现营业收入人民币一百二十三亿元，同比增长百分之八点五。".repeat(50),
      "ท่องเที่ยวประเทศไทยมหาวิทยาลัยเทคโนโลยี".repeat(50),
      "\u1112\u1161\u11ab\u1100\u116e\u11a8".repeat(300), // decomposed Hangul: NFC makes one syllable of three jamo
      "\u212a\u212b".repeat(500), // KELVIN and ANGSTROM signs: NFC makes them K and Å
      "0123456789".repeat(300),
      " ".repeat(5000),
      "=".repeat(5000) + "\n" + "-".repeat(5000),
      ".translatesAutoresizingMaskIntoConstraints".repeat(100),
      "<|im_end|><|object_ref_start|>".repeat(100),
      "e\u0301".repeat(1000),
      "e\u0301x ".repeat(1000), // NFC joins "e" + U+0301 + "x" into one word
      "tool_call|x_y ".repeat(500),
      "<tool_call></tool_call><think>".repeat(200),
    ];
    for (const t of texts) expect(minTokens(t), JSON.stringify(t.slice(0, 20))).toBeLessThanOrEqual(countTokens(t));
    // Useful: prose's bound is a fair share of its count.
    const prose = texts[0]!;
    expect(minTokens(prose)).toBeGreaterThan(countTokens(prose) * 0.7);
    // Given in parts, a word cut in two counts once: the bound of the parts is the bound of the whole.
    expect(new TokenFloor().add("Hel").add("lo wor").add("ld").value).toBe(minTokens("Hello world"));
  });
});

describe("a PDF of empty pages", () => {
  it("a run of empty pages is one marker naming the range; the numbering of later pages is kept", async () => {
    const doc = await loadDocument({ bytes: makePdf(["The only sentence.", ...Array(2000).fill("")]), name: "empty.pdf" });
    expect(doc.pages).toBe(2001);
    expect(doc.text).toBe("--- page 1 ---\nThe only sentence.\n\n--- pages 2–2001: no text ---\n");
    // It cost 16,913 tokens (8 per empty page) on main.
    expect(countTokens(doc.text)).toBeLessThan(30);

    const mixed = await loadDocument({ bytes: makePdf(["A", "", "", "", "B", "", "C", "", ""]), name: "mixed.pdf" });
    expect(mixed.text).toBe("--- page 1 ---\nA\n\n--- pages 2–4: no text ---\n\n--- page 5 ---\nB\n\n--- page 6 ---\n\n\n--- page 7 ---\nC\n\n--- pages 8–9: no text ---\n");
  });

  it("citations read the pages around a run of empty pages by their numbers", async () => {
    const doc = await loadDocument({ bytes: makePdf(["", "", "Revenue rose.", "", "", "", "Costs fell."]), name: "c.pdf" });
    expect(doc.text).toBe("--- pages 1–2: no text ---\n\n--- page 3 ---\nRevenue rose.\n\n--- pages 4–6: no text ---\n\n--- page 7 ---\nCosts fell.\n");
    const { kind, places } = splitPlaces(doc.text);
    expect(kind).toBe("pages");
    expect(places).toEqual([
      { label: 3, text: "\nRevenue rose.\n\n" },
      { label: 7, text: "\nCosts fell.\n" },
    ]);
  });

  it("extraction time grows linearly with the page count (pdf.js looked every page up from the root)", async () => {
    const time = async (n: number) => {
      const bytes = makePdf(["Text.", ...Array(n - 1).fill("")]);
      const t0 = performance.now();
      const doc = await loadDocument({ bytes, name: "n.pdf" });
      expect(doc.pages).toBe(n);
      return performance.now() - t0;
    };
    await time(100); // pdf.js loaded
    // The faster of two runs each: other test files share the two cores.
    const small = Math.min(await time(2_000), await time(2_000));
    const large = Math.min(await time(8_000), await time(8_000));
    // Four times the pages: linear is about 4x, the old quadratic lookup 16x (20,000 pages took 113 s).
    expect(large / small).toBeLessThan(10);
    expect(large).toBeLessThan(20_000);
  }, 60_000);

  it("with the model's limit given, stops reading pages once their text cannot fit", async () => {
    const page = "The quick brown fox jumps over the lazy dog and keeps running far away. ".repeat(10);
    const e = await loadErr(makePdf(Array(200).fill(page)), "long.pdf", { maxTokens: 2_000 });
    expect(e.code).toBe("input_too_long");
    expect(e.message).toMatch(/^long\.pdf: its text has at least \d+ tokens .*over the 2000 tokens/);
  });
});

describe("deeply nested HTML", () => {
  it("converts in time linear in the depth (htmlparser2's stack moved every element on each tag)", () => {
    const nested = (n: number) => `<html><body>${"<div>".repeat(n)}deep text${"</div>".repeat(n)}<ul>${"<li><ul>".repeat(n / 10)}item${"</ul></li>".repeat(n / 10)}</ul></body></html>`;
    const time = (n: number) => {
      const html = nested(n);
      const t0 = performance.now();
      const r = htmlToText(html);
      expect(r.text).toContain("deep text");
      expect(r.text).toContain("item");
      return performance.now() - t0;
    };
    time(10_000);
    const small = Math.min(time(50_000), time(50_000));
    const large = Math.min(time(200_000), time(200_000));
    // Four times the depth: linear is about 4x, quadratic 16x (200,000 levels took 45 s on main).
    expect(large / small).toBeLessThan(8);
    expect(large).toBeLessThan(5_000);
  }, 60_000);

  it("the text of nested lists and of a page closed by the end of input is unchanged", () => {
    expect(htmlToText("<ul><li>a<ul><li>b<ol><li>c</li><li>d</li></ol></li></ul></li><li>e</li></ul>").text).toBe("- a\n  - b\n    1. c\n    2. d\n- e");
    expect(htmlToText("<div><p>one<p>two<table><tr><td>x<td>y</table>").text).toContain("one\n\ntwo");
  });
});
