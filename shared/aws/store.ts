import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";

/** Where each piece of a run lives in the bucket (the contract's S3 layout). */
export const keys = {
  job: (jobId: string) => `runs/${jobId}/job.json`,
  manifest: (jobId: string) => `runs/${jobId}/manifest.json`,
  report: (jobId: string) => `runs/${jobId}/report.html`,
  halt: (jobId: string) => `runs/${jobId}/halt.json`,
  cancel: (jobId: string) => `runs/${jobId}/cancel.json`,
  itemsPrefix: (jobId: string) => `runs/${jobId}/items/`,
  item: (jobId: string, itemId: string, file: string) => `runs/${jobId}/items/${itemId}/${file}`,
  attempt: (jobId: string, itemId: string, n: number) => `runs/${jobId}/items/${itemId}/attempts/${n}.json`,
};

/** A small port over S3: the only storage calls the core library makes. */
export class ObjectStore {
  readonly s3: S3Client;
  readonly bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.s3 = s3;
    this.bucket = bucket;
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

  async put(key: string, body: string | Uint8Array, contentType: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  putJson(key: string, value: unknown): Promise<void> {
    return this.put(key, JSON.stringify(value, null, 2) + "\n", "application/json");
  }

  /**
   * Writes only if the key is absent (S3 `If-None-Match: *`). Returns false when another writer
   * got there first. The local emulator does not enforce the condition, so nothing relies on it
   * for correctness; on S3 it stops two racing deliveries from both recording a result.
   */
  async putJsonIfAbsent(key: string, value: unknown): Promise<boolean> {
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: JSON.stringify(value, null, 2) + "\n",
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

  async listKeys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }
}

function isMissing(e: unknown): boolean {
  if (e instanceof NoSuchKey || e instanceof NotFound) return true;
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 404;
}
