/**
 * The provider's Files and Batch APIs (OpenAI-compatible, docs/qwen-api.md §8) through the `openai`
 * SDK: upload an input file (purpose `batch`), create a batch over it, read its state, download
 * its output and error files, cancel it. The SDK's own retries are on here: every call is
 * idempotent or checked (a create is looked up by its input file first).
 */
import OpenAI, { toFile } from "openai";
import { ModelError } from "../errors.ts";
import { classifyModelError } from "../model/errors.ts";
import type { BatchState } from "../run/batch-records.ts";

export interface ProviderBatch {
  id: string;
  status: BatchState;
  inputFileId: string;
  outputFileId: string | null;
  errorFileId: string | null;
  counts: { total: number; completed: number; failed: number };
  /** Why a batch failed as a whole (e.g. its file did not validate). */
  error: string | null;
}

/** Chat completions, or the free dry run that validates a file without inference (model `batch-test-model`). */
export type BatchEndpoint = "/v1/chat/completions" | "/v1/chat/ds-test";

export interface BatchApi {
  uploadFile(name: string, content: string): Promise<string>;
  /** The batch already made over this input file, if any (a poller killed after the create). */
  findBatch(inputFileId: string): Promise<ProviderBatch | null>;
  createBatch(inputFileId: string, metadata: Record<string, string>, endpoint?: BatchEndpoint): Promise<ProviderBatch>;
  retrieveBatch(batchId: string): Promise<ProviderBatch>;
  fileContent(fileId: string): Promise<string>;
  cancelBatch(batchId: string): Promise<ProviderBatch>;
}

/** The endpoint does not know the input file (uploaded to an endpoint since restarted): upload it again. */
export class UnknownInputFile extends Error {
  readonly fileId: string;
  constructor(fileId: string) {
    super(`the endpoint does not know input file ${fileId}`);
    this.fileId = fileId;
  }
}

export function createBatchApi(o: { apiKey: string; baseURL: string; fetch?: typeof fetch }): BatchApi {
  const client = new OpenAI({ apiKey: o.apiKey, baseURL: o.baseURL, maxRetries: 3, timeout: 10 * 60_000, logLevel: "off", ...(o.fetch && { fetch: o.fetch }) });
  const guard = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      if (e instanceof UnknownInputFile) throw e;
      const err = classifyModelError(e);
      if (err instanceof ModelError) err.message = `${what}: ${err.message}`;
      throw err;
    }
  };
  return {
    uploadFile: (name, content) => guard(`uploading ${name} to the Files API`, async () => (await client.files.create({ file: await toFile(Buffer.from(content), name), purpose: "batch" })).id),
    findBatch: (inputFileId) =>
      guard("listing batches", async () => {
        const page = await client.batches.list({ limit: 100 }, { query: { input_file_ids: inputFileId } });
        const found = page.data.find((b) => b.input_file_id === inputFileId);
        return found ? toBatch(found) : null;
      }),
    createBatch: (inputFileId, metadata, endpoint = "/v1/chat/completions") =>
      guard("creating a batch", async () => {
        try {
          return toBatch(await client.batches.create({ input_file_id: inputFileId, endpoint: endpoint as "/v1/chat/completions", completion_window: "24h", metadata }));
        } catch (e) {
          if (e instanceof OpenAI.NotFoundError) throw new UnknownInputFile(inputFileId);
          throw e;
        }
      }),
    retrieveBatch: (id) =>
      guard(`reading batch ${id}`, async () => {
        try {
          return toBatch(await client.batches.retrieve(id));
        } catch (e) {
          // A batch the endpoint does not know (a local simulator restarted, another account's key) will never answer.
          if (e instanceof OpenAI.NotFoundError) return { id, status: "failed", inputFileId: "", outputFileId: null, errorFileId: null, counts: { total: 0, completed: 0, failed: 0 }, error: "the endpoint does not know this batch (404)" };
          throw e;
        }
      }),
    fileContent: (id) => guard(`downloading file ${id}`, async () => (await client.files.content(id)).text()),
    cancelBatch: (id) => guard(`cancelling batch ${id}`, async () => toBatch(await client.batches.cancel(id))),
  };
}

function toBatch(b: OpenAI.Batch): ProviderBatch {
  const errors = b.errors?.data ?? [];
  return {
    id: b.id,
    status: b.status as BatchState,
    inputFileId: b.input_file_id,
    outputFileId: b.output_file_id ?? null,
    errorFileId: b.error_file_id ?? null,
    counts: { total: b.request_counts?.total ?? 0, completed: b.request_counts?.completed ?? 0, failed: b.request_counts?.failed ?? 0 },
    error: errors.length ? errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ") : null,
  };
}
