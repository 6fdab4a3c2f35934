import type { S3Client } from "@aws-sdk/client-s3";
import { ObjectStore } from "../run/store.ts";
import type { ModelInfo } from "../model/catalog.ts";
import { loadDocument } from "../documents/index.ts";
import { extensionOf } from "../documents/detect.ts";
import { DocumentError, toErrorRecord } from "../errors.ts";
import { parseS3Uri, type ItemDocument } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { planCall } from "../model/plan.ts";
import { documentBlock } from "../model/prompt.ts";
import { countTokens } from "../tokens/index.ts";

/**
 * Formats whose extracted text is the file's text as is (decoded, controls removed), so its
 * size bounds its tokens. CSV, HTML and XLSX become Markdown tables padded to their widest row,
 * and PDF and DOCX are compressed: their size bounds nothing, so they are never packed.
 */
const PACKABLE = new Set(["txt", "text", "log", "md", "markdown", "mdx", "json", "jsonl", "ndjson", "geojson"]);

/**
 * Tokens per byte that no packable file can exceed: a token covers at least one byte of UTF-8,
 * and decoding grows a file at most threefold (a one-byte Windows-1252 character such as the euro
 * sign is three bytes of UTF-8; UTF-16 grows at most 1.5 times).
 */
export const PACK_TOKENS_PER_BYTE = 3;

/** The most tokens a document's block can take, from its name and size alone; null when its size bounds nothing. */
export function blockTokenBound(doc: ItemDocument): number | null {
  if (doc.bytes === undefined || !PACKABLE.has(extensionOf(doc.source))) return null;
  return countTokens(documentBlock({ source: doc.source, text: "" }, 99)) + 2 + doc.bytes * PACK_TOKENS_PER_BYTE;
}

type PackSpec = Parameters<typeof planCall>[0];

/**
 * Packs many small documents into as few calls as their sizes allow (`packing: packed`), from
 * the listing alone: submit reads no document, and `estimate` packs the same way, so both see
 * the same items. First fit by decreasing bound; a pack never holds more than the model's input
 * room by the bound, so it always fits when the worker counts it exactly. Documents that are
 * not plain text, Markdown or JSON (or whose size is unknown) go alone. Documents keep their
 * original order inside a pack, and packs are ordered by their first document.
 */
export function packDocuments(spec: PackSpec, model: ModelInfo, docs: ItemDocument[]): ItemDocument[][] {
  const packed = { ...spec, packing: "packed" as const, truncate: "none" as const };
  const order = new Map(docs.map((d, i) => [d, i]));
  // The prompt around the documents (system, questions, the pack's framing) and the output room.
  const overhead = planCall(packed, model, []).inputTokens;
  const capacity = Math.min(model.maxInputTokens, model.contextTokens - spec.maxOutputTokens - (spec.thinking.enabled ? (spec.thinking.budget ?? 0) : 0)) - overhead;
  const solo: ItemDocument[][] = [];
  const sized: { d: ItemDocument; tokens: number }[] = [];
  for (const d of docs) {
    const tokens = blockTokenBound(d);
    if (tokens === null || tokens > capacity) solo.push([d]);
    else sized.push({ d, tokens });
  }
  sized.sort((a, b) => b.tokens - a.tokens);
  const bins: { docs: ItemDocument[]; tokens: number }[] = [];
  for (const s of sized) {
    const bin = bins.find((b) => b.tokens + s.tokens <= capacity);
    if (bin) {
      bin.docs.push(s.d);
      bin.tokens += s.tokens;
    } else {
      bins.push({ docs: [s.d], tokens: s.tokens });
    }
  }
  const packs = [...solo, ...bins.map((b) => b.docs.sort((x, y) => order.get(x)! - order.get(y)!))];
  return packs.sort((a, b) => order.get(a[0]!)! - order.get(b[0]!)!);
}

export interface MeasuredDocument {
  doc: ItemDocument;
  text: string;
  format: string | null;
  error: { kind: string; message: string } | null;
}

/** Reads and extracts each document from S3, one at a time: only a local run's cost-cap check does this before queueing. */
export async function measureDocuments(s3: S3Client, docs: ItemDocument[], spec: Pick<JobSpec, "limits">): Promise<MeasuredDocument[]> {
  const out: MeasuredDocument[] = [];
  for (const doc of docs) {
    const { bucket, key } = parseS3Uri(doc.uri);
    const bytes = await new ObjectStore(s3, bucket).getBytes(key);
    try {
      if (!bytes) throw new DocumentError("document_missing", `${doc.source}: not found at ${doc.uri}`);
      const loaded = await loadDocument({ bytes, name: doc.source }, { maxBytes: spec.limits.maxDocumentBytes, encoding: doc.encoding });
      out.push({ doc, text: loaded.text, format: loaded.format, error: null });
    } catch (e) {
      if (!(e instanceof DocumentError)) throw e;
      out.push({ doc, text: "", format: null, error: toErrorRecord(e) });
    }
  }
  return out;
}
