import type { S3Client } from "@aws-sdk/client-s3";
import { LongdocError } from "../errors.ts";
import { s3Uri, type ItemDocument } from "../job/record.ts";
import type { JobSpec } from "../job/schema.ts";
import { ObjectStore } from "../run/store.ts";

/** Lists the objects under each `s3:` source, with their sizes (a key ending in '/' is a folder marker, skipped). */
export async function resolveS3Documents(spec: JobSpec, s3: S3Client): Promise<ItemDocument[]> {
  const out: ItemDocument[] = [];
  for (const [index, src] of spec.documents.entries()) {
    if (!("s3" in src)) continue;
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(src.s3)!;
    const bucket = m[1]!;
    const prefix = m[2] ?? "";
    const found = (await new ObjectStore(s3, bucket).listObjects(prefix)).filter((o) => !o.key.endsWith("/"));
    if (found.length === 0) throw new LongdocError("document_missing", `documents[${index}].s3: nothing under ${src.s3}`);
    for (const { key, bytes } of found) out.push({ source: s3Uri(bucket, key), uri: s3Uri(bucket, key), bytes, ...(src.encoding && { encoding: src.encoding }) });
  }
  return out;
}
