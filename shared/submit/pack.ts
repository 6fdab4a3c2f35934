import type { S3Client } from "@aws-sdk/client-s3";
import { ObjectStore } from "../run/store.ts";
import type { ModelInfo } from "../model/catalog.ts";
import { loadDocument } from "../documents/index.ts";
import { DocumentError, LongdocError, toErrorRecord } from "../errors.ts";
import { parseS3Uri, type ItemDocument } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { planCall } from "../model/plan.ts";
import { documentBlock } from "../model/prompt.ts";
import { countTokens } from "../tokens/index.ts";

export interface MeasuredDocument {
  doc: ItemDocument;
  text: string;
  /** The document could not be read; it goes alone and fails in its own item. */
  unreadable?: boolean;
  format?: string;
  error?: { kind: string; message: string };
}

type PackSpec = Parameters<typeof planCall>[0];

/**
 * Packs many small documents into as few calls as fit (`packing: packed`). First fit by
 * decreasing size on each document's block tokens, then every pack is checked exactly with the
 * same `planCall` the worker uses; a pack that does not fit gives up its last document to a new
 * pack. A document too big to fit alone gets a pack of its own and fails there with the numbers.
 * Documents keep their original order inside a pack.
 */
export function packDocuments(spec: PackSpec, model: ModelInfo, docs: MeasuredDocument[]): ItemDocument[][] {
  const packed = { ...spec, packing: "packed" as const };
  const order = new Map(docs.map((d, i) => [d, i]));
  const fits = (pack: MeasuredDocument[]) => {
    try {
      planCall({ ...packed, truncate: "none" }, model, pack.map((d) => ({ source: d.doc.source, text: d.text })));
      return true;
    } catch (e) {
      if (LongdocError.is(e) && e.code === "input_too_long") return false;
      throw e;
    }
  };
  // The prompt without documents, and each document's block, give an additive size estimate.
  const overhead = planCall({ ...packed, truncate: "none" }, model, []).inputTokens;
  const capacity = Math.min(model.maxInputTokens, model.contextTokens - spec.maxOutputTokens - (spec.thinking.enabled ? (spec.thinking.budget ?? 0) : 0)) - overhead;
  const solo = docs.filter((d) => d.unreadable).map((d) => [d]);
  const sized = docs.filter((d) => !d.unreadable).map((d) => ({ d, tokens: countTokens(documentBlock({ source: d.doc.source, text: d.text }, 99)) + 2 }));
  sized.sort((a, b) => b.tokens - a.tokens);
  const bins: { docs: MeasuredDocument[]; tokens: number }[] = [];
  for (const s of sized) {
    const bin = bins.find((b) => b.tokens + s.tokens <= capacity);
    if (bin) {
      bin.docs.push(s.d);
      bin.tokens += s.tokens;
    } else {
      bins.push({ docs: [s.d], tokens: s.tokens });
    }
  }
  const packs: MeasuredDocument[][] = [...solo];
  const queue = bins.map((b) => b.docs.sort((x, y) => order.get(x)! - order.get(y)!));
  while (queue.length > 0) {
    const pack = queue.shift()!;
    const spill: MeasuredDocument[] = [];
    while (pack.length > 1 && !fits(pack)) spill.unshift(pack.pop()!);
    packs.push(pack);
    if (spill.length > 0) queue.push(spill);
  }
  return packs.sort((a, b) => order.get(a[0]!)! - order.get(b[0]!)!).map((p) => p.map((d) => d.doc));
}

/** Reads and extracts each document from S3 at submit time (for packing and the cost cap), one at a time. */
export async function measureDocuments(s3: S3Client, docs: ItemDocument[], spec: Pick<JobSpec, "limits">): Promise<MeasuredDocument[]> {
  const out: MeasuredDocument[] = [];
  for (const doc of docs) {
    const { bucket, key } = parseS3Uri(doc.uri);
    const bytes = await new ObjectStore(s3, bucket).getBytes(key);
    try {
      if (!bytes) throw new DocumentError("document_missing", `${doc.source}: not found at ${doc.uri}`);
      const loaded = await loadDocument({ bytes, name: doc.source }, { maxBytes: spec.limits.maxDocumentBytes });
      out.push({ doc, text: loaded.text, format: loaded.format });
    } catch (e) {
      if (!(e instanceof DocumentError)) throw e;
      out.push({ doc, text: "", unreadable: true, error: toErrorRecord(e) });
    }
  }
  return out;
}
