import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

/**
 * The S3 client every longdoc process uses. Checksums only where S3 requires them: by default the
 * SDK computes a CRC32 of every body it sends and checks one on every body it reads, in
 * JavaScript, which on a worker costs about 4 ms per MB read and 1 ms per small write
 * (bench/overhead.ts). Transfers still have TLS's integrity on AWS.
 */
export function s3Client(config: S3ClientConfig = {}): S3Client {
  return new S3Client({ requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED", ...config });
}

/**
 * Bodies above this go up in parts (multipart upload) rather than one PutObject: S3 caps a single
 * PUT at 5 GiB and emulators far lower (fauxqs refuses bodies over 11 MiB), and parts can retry alone.
 */
export const MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024;
/** Each part of a multipart upload (S3's minimum is 5 MiB, except the last). */
export const MULTIPART_PART_BYTES = 8 * 1024 * 1024;

/** Where each piece of a run lives in the bucket (the contract's S3 layout). */
export const keys = {
  runsPrefix: "runs/",
  run: (jobId: string) => `runs/${jobId}/`,
  job: (jobId: string) => `runs/${jobId}/job.json`,
  manifest: (jobId: string) => `runs/${jobId}/manifest.json`,
  report: (jobId: string) => `runs/${jobId}/report.html`,
  halt: (jobId: string) => `runs/${jobId}/halt.json`,
  /** The last end-of-job event and how its delivery went (shared/run/notify.ts). */
  notify: (jobId: string) => `runs/${jobId}/notify.json`,
  cancel: (jobId: string) => `runs/${jobId}/cancel.json`,
  itemsPrefix: (jobId: string) => `runs/${jobId}/items/`,
  item: (jobId: string, itemId: string, file: string) => `runs/${jobId}/items/${itemId}/${file}`,
  /** An OpenAI Batch input item's request (the line's body as longdoc sends it); outside items/ so a retry does not move it. */
  request: (jobId: string, itemId: string) => `runs/${jobId}/requests/${itemId}.json`,
  attempt: (jobId: string, itemId: string, n: number) => `runs/${jobId}/items/${itemId}/attempts/${n}.json`,
  /** Where retry round `round` keeps an item's earlier files, relative to the run. */
  previous: (itemId: string, round: number) => `items/${itemId}/previous/${round}/`,
  retriesPrefix: (jobId: string) => `runs/${jobId}/retries/`,
  retry: (jobId: string, round: number) => `runs/${jobId}/retries/${round}.json`,
  /** Local runs only: which job a job file last started, so running it again resumes that job. */
  localJob: (jobFileHash: string) => `local/jobs/${jobFileHash}.json`,
  /** A local document uploaded for a run: content-addressed by the first 16 hex digits of its SHA-256. */
  input: (sha256Hex: string, name: string) => `inputs/${sha256Hex.slice(0, 16)}/${name}`,
};

/** A small port over S3: the only storage calls the core library makes. */
export class ObjectStore {
  readonly s3: S3Client;
  readonly bucket: string;
  /** How messages name this store: `s3://bucket` unless the opener knows better (a local state directory). */
  readonly label: string;

  constructor(s3: S3Client, bucket: string, label = `s3://${bucket}`) {
    this.s3 = s3;
    this.bucket = bucket;
    this.label = label;
  }

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    const bytes = await this.getBytes(key);
    return bytes === undefined ? undefined : (JSON.parse(new TextDecoder().decode(bytes)) as T);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  /**
   * Writes an object. The body always goes as bytes of known length (never a stream, so the SDK
   * sends Content-Length and never warns about a "Stream of unknown length"); bodies over
   * MULTIPART_THRESHOLD_BYTES go as a multipart upload in MULTIPART_PART_BYTES parts.
   */
  async put(key: string, body: string | Uint8Array, contentType: string): Promise<void> {
    const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    if (bytes.byteLength <= MULTIPART_THRESHOLD_BYTES) {
      await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentLength: bytes.byteLength, ContentType: contentType }));
      return;
    }
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: this.bucket, Key: key, Body: bytes, ContentType: contentType },
      partSize: MULTIPART_PART_BYTES,
      queueSize: 4,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  putJson(key: string, value: unknown): Promise<void> {
    return this.put(key, jsonText(value), "application/json");
  }

  /**
   * Writes only if the key is absent (S3 `If-None-Match: *`). Returns false when another writer
   * got there first. The local emulator does not enforce the condition, so nothing relies on it
   * for correctness; on S3 it stops two racing deliveries from both recording a result.
   */
  async putJsonIfAbsent(key: string, value: unknown): Promise<boolean> {
    try {
      const bytes = Buffer.from(jsonText(value), "utf8");
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: "application/json",
          IfNoneMatch: "*",
        }),
      );
      return true;
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) return false;
      throw e;
    }
  }

  async copy(from: string, to: string): Promise<void> {
    const source = `${this.bucket}/${from.split("/").map(encodeURIComponent).join("/")}`;
    await this.s3.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: source }));
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** The next level of "folders" under `prefix` (S3 common prefixes), without the prefix; [] when the bucket is missing. */
  async listFolders(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: "/", ContinuationToken: token }));
        for (const p of page.CommonPrefixes ?? []) if (p.Prefix) out.push(p.Prefix.slice(prefix.length, -1));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      if ((e as { name?: string }).name === "NoSuchBucket") return [];
      throw e;
    }
    return out;
  }

  /** True when at least one key starts with `prefix`. */
  async hasAny(prefix: string): Promise<boolean> {
    const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1 }));
    return (page.Contents ?? []).length > 0;
  }

  async listKeys(prefix: string): Promise<string[]> {
    return (await this.listObjects(prefix)).map((o) => o.key);
  }

  /** Every object under `prefix` with its size, a page (1,000 keys) per request. */
  async listObjects(prefix: string): Promise<{ key: string; bytes: number }[]> {
    const out: { key: string; bytes: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, bytes: o.Size ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }
}

/** How every JSON object of a run is written: indented, one trailing newline. */
export const jsonText = (value: unknown): string => JSON.stringify(value, null, 2) + "\n";

/** The buckets an S3 endpoint holds (the local state reader looks for the runs bucket this way). */
export async function listBuckets(s3: S3Client): Promise<string[]> {
  return ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).flatMap((b) => (b.Name ? [b.Name] : []));
}

function isMissing(e: unknown): boolean {
  if (e instanceof NoSuchKey || e instanceof NotFound) return true;
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 404;
}
