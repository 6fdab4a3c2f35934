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
  S3ServiceException,
  type S3Client,
} from "@aws-sdk/client-s3";

/**
 * S3 in memory, for the commands ObjectStore sends (get, head, put with If-None-Match, copy,
 * delete, list with prefix, delimiter and pages), answering and failing as S3 does: a missing key
 * is NoSuchKey (404), a refused If-None-Match is 412, keys list in byte order, 1,000 a page.
 * test/memory-s3.test.ts runs ObjectStore on it and on the emulator (fauxqs) with the same checks.
 * Any other command (a multipart upload) is refused by name, so a test cannot pass by skipping one.
 */
export function memoryS3(buckets: string[]): S3Client & { objects(bucket: string): Map<string, Uint8Array>; sent: string[] } {
  const data = new Map(buckets.map((b) => [b, new Map<string, { body: Uint8Array; contentType?: string }>()]));
  const sent: string[] = [];
  const bucketOf = (name: string | undefined) => {
    const b = data.get(name ?? "");
    if (!b) throw fault("NoSuchBucket", 404, `The specified bucket does not exist: ${name}`);
    return b;
  };

  const handle = (command: unknown): object => {
    if (command instanceof GetObjectCommand) {
      const o = bucketOf(command.input.Bucket).get(command.input.Key!);
      if (!o) throw new NoSuchKey({ message: "The specified key does not exist.", $metadata: { httpStatusCode: 404 } });
      const body = o.body.slice();
      return { Body: { transformToByteArray: async () => body, transformToString: async () => new TextDecoder().decode(body) }, ContentLength: body.byteLength, ContentType: o.contentType };
    }
    if (command instanceof HeadObjectCommand) {
      const o = bucketOf(command.input.Bucket).get(command.input.Key!);
      if (!o) throw new NotFound({ message: "NotFound", $metadata: { httpStatusCode: 404 } });
      return { ContentLength: o.body.byteLength, ContentType: o.contentType };
    }
    if (command instanceof PutObjectCommand) {
      const b = bucketOf(command.input.Bucket);
      const key = command.input.Key!;
      if (command.input.IfNoneMatch === "*" && b.has(key)) throw fault("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold");
      b.set(key, { body: toBytes(command.input.Body), contentType: command.input.ContentType });
      return {};
    }
    if (command instanceof CopyObjectCommand) {
      const source = command.input.CopySource!;
      const slash = source.indexOf("/");
      const from = bucketOf(source.slice(0, slash)).get(decodeURIComponent(source.slice(slash + 1)));
      if (!from) throw new NoSuchKey({ message: "The specified key does not exist.", $metadata: { httpStatusCode: 404 } });
      bucketOf(command.input.Bucket).set(command.input.Key!, { ...from, body: from.body.slice() });
      return {};
    }
    if (command instanceof DeleteObjectCommand) {
      bucketOf(command.input.Bucket).delete(command.input.Key!);
      return {};
    }
    if (command instanceof ListObjectsV2Command) return list(bucketOf(command.input.Bucket), command.input);
    if (command instanceof ListBucketsCommand) return { Buckets: [...data.keys()].map((Name) => ({ Name })) };
    throw new Error(`memoryS3: ${(command as object).constructor.name} is not implemented`);
  };

  const client = {
    async send(command: unknown) {
      sent.push((command as object).constructor.name);
      // A turn of the event loop, as a network call would take: interleavings stay possible.
      await new Promise((resolve) => setImmediate(resolve));
      return handle(command);
    },
    objects: (bucket: string) => new Map([...bucketOf(bucket)].map(([k, o]) => [k, o.body])),
    sent,
    destroy() {},
  };
  return client as unknown as S3Client & { objects(bucket: string): Map<string, Uint8Array>; sent: string[] };
}

const PAGE = 1000;

function list(bucket: Map<string, { body: Uint8Array }>, input: ListObjectsV2Command["input"]) {
  const prefix = input.Prefix ?? "";
  const max = Math.min(input.MaxKeys ?? PAGE, PAGE);
  const after = input.ContinuationToken ?? "";
  const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix)).sort(byteOrder);
  const contents: { Key: string; Size: number }[] = [];
  const prefixes: string[] = [];
  let last: string | undefined;
  let truncated = false;
  for (const key of keys) {
    const rest = key.slice(prefix.length);
    const cut = input.Delimiter ? rest.indexOf(input.Delimiter) : -1;
    const entry = cut >= 0 ? prefix + rest.slice(0, cut + input.Delimiter!.length) : key;
    if (byteOrder(entry, after) <= 0) continue;
    if (entry === last) continue;
    if (contents.length + prefixes.length === max) {
      truncated = true;
      break;
    }
    if (cut >= 0) prefixes.push(entry);
    else contents.push({ Key: key, Size: bucket.get(key)!.body.byteLength });
    last = entry;
  }
  return {
    Contents: contents.length ? contents : undefined,
    CommonPrefixes: prefixes.length ? prefixes.map((Prefix) => ({ Prefix })) : undefined,
    KeyCount: contents.length + prefixes.length,
    IsTruncated: truncated,
    ...(truncated && { NextContinuationToken: last }),
  };
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function toBytes(body: unknown): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return new Uint8Array(body);
  throw new Error("memoryS3: only string and byte bodies are implemented (ObjectStore sends bytes)");
}

function fault(name: string, status: number, message: string): Error {
  return new S3ServiceException({ name, $fault: "client", message, $metadata: { httpStatusCode: status } });
}
