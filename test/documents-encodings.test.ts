/**
 * Text in the encodings people write: GBK/GB18030, Big5, Shift-JIS, EUC-KR, Windows-1252 and
 * UTF-16 with or without a BOM are read as the characters written (they were mojibake with exit
 * 0); a file whose encoding cannot be told fails, naming the candidates and the job-file field
 * that states it; that field reaches estimate and the worker.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { loadDocument } from "../shared/documents/index.ts";
import { parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { estimateJob } from "../shared/submit/estimate.ts";
import { submitJob } from "../shared/submit/submit.ts";
import { countTokens } from "../shared/tokens/index.ts";
import { ROOT } from "./helpers/cli.ts";
import { encodeText } from "./helpers/legacy-encode.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loopbackWorker } from "./helpers/worker.ts";

const dir = mkdtempSync(path.join(tmpdir(), "longdoc-enc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function extract(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["bin/longdoc.ts", "extract", ...args], { cwd: ROOT, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

// A few hundred bytes each: short enough that detection has little to go on.
const GB = "# 二〇二五年度报告摘要\n\n本公司二〇二五年实现营业收入人民币一百二十三亿元，同比增长百分之八点五。净利润为十五亿元，主要得益于海外市场的持续拓展和成本控制。董事会建议每十股派发现金红利三元。\n\n风险提示：原材料价格波动、汇率变化以及行业竞争加剧可能影响未来业绩。\n";
const GB_RULES = "第一章 总则\n\n为了规范公司的组织和行为，保护公司、股东和债权人的合法权益，根据《中华人民共和国公司法》，制定本章程。公司是企业法人，有独立的法人财产，享有法人财产权。\n";
const BIG5 = "# 二零二五年度報告摘要\n\n本公司二零二五年實現營業收入新臺幣一百二十三億元，較去年成長百分之八點五。稅後淨利為十五億元，主要來自海外市場的持續擴展與成本控制。董事會建議每股配發現金股利三元。\n";
const SJIS = "# 二〇二五年度 決算短信\n\n当社の二〇二五年度の売上高は一千二百三十億円となり、前年同期比で八・五パーセント増加しました。営業利益は百五十億円で、海外事業の拡大とコスト削減が寄与しました。配当は一株当たり三十円を予定しています。\n";
const KR = "# 2025년 연차 보고서 요약\n\n당사의 2025년 매출액은 1조 2300억 원으로 전년 대비 8.5% 증가하였습니다. 영업이익은 1500억 원이며, 해외 시장 확대와 비용 절감이 주요 요인입니다. 이사회는 주당 300원의 현금 배당을 제안합니다.\n";
const CP1252 = "Résumé du rapport annuel 2025\n\nLe chiffre d’affaires a progressé de 8,5 % pour atteindre 12,3 milliards d’euros. Les coûts ont été maîtrisés grâce à l’amélioration de la productivité ; le résultat net s’élève à 1,5 milliard €. Über die Dividende (3 € je Aktie) entscheidet die Hauptversammlung.\n";
const JA_CSV = "地域,売上高,営業利益,前年比\n東日本,1200,150,増加\n西日本,980,120,減少\n北海道,760,90,横ばい\n九州,540,60,増加\n合計,3480,420,増加\n";
const CJK_ONLY = "本公司实现营业收入人民币一百二十三亿元同比增长百分之八点五净利润为十五亿元主要得益于海外市场的持续拓展和成本控制董事会建议每十股派发现金红利三元";

const BOM = { "utf-16le": [0xff, 0xfe], "utf-16be": [0xfe, 0xff] } as const;
const withBom = (bytes: Uint8Array, enc: keyof typeof BOM) => Uint8Array.from([...BOM[enc], ...bytes]);

const cases: { name: string; text: string; bytes: Uint8Array; encoding: string }[] = [
  { name: "gbk.md", text: GB, bytes: encodeText(GB, "gbk"), encoding: "gb18030" },
  { name: "rules.txt", text: GB_RULES, bytes: encodeText(GB_RULES, "gb18030"), encoding: "gb18030" },
  { name: "big5.md", text: BIG5, bytes: encodeText(BIG5, "big5"), encoding: "big5" },
  { name: "sjis.md", text: SJIS, bytes: encodeText(SJIS, "shift_jis"), encoding: "shift_jis" },
  { name: "euckr.md", text: KR, bytes: encodeText(KR, "euc-kr"), encoding: "euc-kr" },
  { name: "ansi.txt", text: CP1252, bytes: encodeText(CP1252, "windows-1252"), encoding: "windows-1252" },
  { name: "sjis.csv", text: JA_CSV, bytes: encodeText(JA_CSV, "shift_jis"), encoding: "shift_jis" },
  { name: "le-bom.md", text: GB, bytes: withBom(encodeText(GB, "utf-16le"), "utf-16le"), encoding: "utf-16le" },
  { name: "be-bom.md", text: SJIS, bytes: withBom(encodeText(SJIS, "utf-16be"), "utf-16be"), encoding: "utf-16be" },
  { name: "le.md", text: GB, bytes: encodeText(GB, "utf-16le"), encoding: "utf-16le" },
  { name: "be.md", text: KR, bytes: encodeText(KR, "utf-16be"), encoding: "utf-16be" },
  { name: "le-cjk-only.txt", text: CJK_ONLY, bytes: encodeText(CJK_ONLY, "utf-16le"), encoding: "utf-16le" },
  { name: "be-ansi.txt", text: CP1252, bytes: encodeText(CP1252, "utf-16be"), encoding: "utf-16be" },
];

describe("each encoding round-trips through extract", () => {
  for (const c of cases) {
    it(`${c.name}: ${c.encoding}, ${c.bytes.length} bytes`, async () => {
      expect(c.bytes.length).toBeLessThan(700);
      const file = path.join(dir, c.name);
      writeFileSync(file, c.bytes);
      // What the same text gives from UTF-8: the characters written.
      const expected = (await loadDocument({ bytes: new TextEncoder().encode(c.text), name: c.name })).text;
      expect(expected).not.toContain("\ufffd");
      const [text, json] = await Promise.all([extract([file]), extract([file, "--json"])]);
      expect(text.stderr).toBe("");
      expect(text.stdout).toBe(expected);
      expect(JSON.parse(json.stdout)).toMatchObject({ encoding: c.encoding, tokens: countTokens(expected) });
    });
  }

  it("text without zero bytes is taken for UTF-16 only when it is not UTF-8 and reads as text in one byte order", async () => {
    const english = "The committee reviewed the results: revenue grew 8%, costs fell 2%, and the dividend is 1.25 per share. ".repeat(5);
    const numbers = Array.from({ length: 200 }, (_, i) => `${i},${i * 3}`).join("\n");
    for (const [name, bytes] of [["en.txt", new TextEncoder().encode(english)], ["n.csv", new TextEncoder().encode(numbers)], ["gbk.txt", encodeText(CJK_ONLY, "gbk")], ["sjis.txt", encodeText(SJIS.replace(/[\s#a-z0-9]/gi, ""), "shift_jis")]] as const) {
      const doc = await loadDocument({ bytes, name }).catch((e: Error) => e);
      if (doc instanceof Error) expect(doc.message).toMatch(/cannot be told/);
      else expect(doc.encoding, name).not.toMatch(/^utf-16/);
    }
  });

  it("UTF-8 says so, and a binary file is still refused", async () => {
    const file = path.join(dir, "utf8.md");
    writeFileSync(file, GB);
    expect(JSON.parse((await extract([file, "--json"])).stdout)).toMatchObject({ format: "markdown", encoding: "utf-8" });
    const binary = path.join(dir, "junk.txt");
    writeFileSync(binary, Uint8Array.from({ length: 400 }, (_, i) => (i * 37) % 32));
    const r = await extract([binary]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/junk\.txt: binary data, not a supported document/);
  });
});

// A short table of characters common to Chinese, Japanese and Korean: GB18030, Big5 and EUC-KR all decode it.
const AMBIGUOUS = "地区,收入,利润\n华东,1200,150\n华南,980,120\n华北,760,90\n西南,540,60\n东北,300,25\n合计,3780,445\n";
const ambiguous = encodeText(AMBIGUOUS, "gbk");

describe("an encoding that cannot be told", () => {
  const file = path.join(dir, "regions.csv");
  writeFileSync(file, ambiguous);

  it("fails the file, naming the candidates and how to state the encoding; never mojibake", async () => {
    const r = await extract([file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^longdoc: .*regions\.csv: not UTF-8, and its encoding cannot be told with confidence \(candidates: /);
    for (const enc of ["gb18030", "big5", "euc-kr"]) expect(r.stderr).toContain(enc);
    expect(r.stderr).toMatch(/state it in the job file: documents: \[\{ path: .*regions\.csv, encoding: [a-z0-9-]+ \}\]\n$/);
  });

  it("extract --encoding states it", async () => {
    const r = await extract([file, "--encoding", "gbk"]);
    expect(r.stdout).toBe((await loadDocument({ bytes: new TextEncoder().encode(AMBIGUOUS), name: "r.csv" })).text);
    const bad = await extract([file, "--encoding", "klingon"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--encoding 'klingon': not an encoding longdoc can decode/);
  });

  it("the job file's `encoding` is checked, and estimate reads the document with it", async () => {
    expect(() => parseJobText("name: e\ndocuments:\n  - path: a.csv\n    encoding: klingon\nprompt: x\n", "e.yaml")).toThrow(/documents.*encoding.*must be an encoding such as utf-8, gbk/s);
    const stated = path.join(dir, "stated.yaml");
    const text = "name: stated\ndocuments:\n  - path: regions.csv\n    encoding: gbk\nprompt: Which region earned most?\n";
    writeFileSync(stated, text);
    const e = await estimateJob(parseJobText(text, stated), stated, loadCatalog());
    const expected = (await loadDocument({ bytes: new TextEncoder().encode(AMBIGUOUS), name: "regions.csv" })).text;
    expect(e.items[0]).toMatchObject({ error: null, documents: [{ tokens: countTokens(expected) }] });

    const unstated = path.join(dir, "unstated.yaml");
    const plain = "name: unstated\ndocuments:\n  - path: regions.csv\nprompt: Which region earned most?\n";
    writeFileSync(unstated, plain);
    const u = await estimateJob(parseJobText(plain, unstated), unstated, loadCatalog());
    expect(u.items[0]!.error).toMatchObject({ kind: "document_encoding" });
  });
});

describe("the worker reads a document in the encoding its job states", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });

  it("the model receives the characters written, not mojibake", async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    await store.put("inputs/enc/regions.csv", ambiguous, "text/csv");
    const spec = parseJobText("name: enc\ndocuments:\n  - path: x\n    encoding: gbk\nprompt: Which region earned most?\n", "enc.yaml");
    const job = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: 3 },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents: [{ source: "regions.csv", uri: s3Uri(loop.stack.bucket, "inputs/enc/regions.csv"), encoding: "gbk" }], outputSchema: null },
    );
    await loopbackWorker(loop)(600_000);
    const result = await store.getJson<ItemResult>(keys.item(job.jobId, job.items[0]!.id, "result.json"));
    expect(result).toMatchObject({ status: "succeeded" });
    const expected = (await loadDocument({ bytes: new TextEncoder().encode(AMBIGUOUS), name: "regions.csv" })).text;
    const proof = loop.sim.calls.at(-1)!.documents[0]!;
    expect(proof.sha256).toBe(createHash("sha256").update(expected, "utf8").digest("hex"));
  });
});
