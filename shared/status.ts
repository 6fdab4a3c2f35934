import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { ListBucketsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { startFauxqs } from "fauxqs";
import { keys, ObjectStore } from "./aws/store.ts";
import { readStackCoordinates, stackClients, type StackCoordinates } from "./deployed.ts";
import { LongdocError } from "./errors.ts";
import type { JobRecord } from "./job/record.ts";
import { localClients } from "./local/stack.ts";
import { buildManifest, summary, type ItemResult, type Manifest } from "./manifest.ts";

/**
 * The progress of a run, computed from what is in the store (the job record and the item results
 * that exist), so it is right while the run is going and agrees with manifest.json once it is done.
 * It is the run summary (the manifest without items) extended with progress fields.
 */
export type RunProgress = Omit<Manifest, "items" | "counts"> & {
  counts: Manifest["counts"] & {
    /** Items without a result yet. */
    queued: number;
    /** Of the queued items, those that already had a failed attempt and wait for another delivery. */
    retrying: number;
  };
  halted: boolean;
  cancelled: boolean;
  /** Since submission; up to `finishedAt` once the run is done. */
  elapsedMs: number;
  /** Finished items per minute over the elapsed time; null before the first item finishes. */
  itemsPerMinute: number | null;
  /** Time left at that rate while running; 0 when done; null while no item has finished. */
  etaMs: number | null;
};

export interface ProgressInput {
  job: JobRecord;
  results: Map<string, ItemResult>;
  /** Items with a recorded failed attempt (attempts/<n>.json). */
  attempted?: Set<string>;
  halted?: boolean;
  cancelled?: boolean;
  now: number;
}

/**
 * Pure: counts, usage and cost come from `buildManifest` (the same function that writes
 * manifest.json), and the ETA from the rate of finished items while running:
 * remaining × elapsed / finished.
 */
export function computeProgress(input: ProgressInput): RunProgress {
  const { job, results, now } = input;
  const halted = input.halted ?? false;
  const cancelled = input.cancelled ?? false;
  const m = buildManifest(job, results, { halted, cancelled });
  const finished = m.counts.succeeded + m.counts.failed + m.counts.skipped;
  const queued = m.counts.total - finished;
  const retrying = m.items.filter((i) => i.status === "queued" && input.attempted?.has(i.id)).length;
  const startedMs = Date.parse(m.startedAt);
  const endMs = m.finishedAt !== null ? Date.parse(m.finishedAt) : now;
  const elapsedMs = Math.max(0, endMs - startedMs);
  const rate = finished > 0 && elapsedMs > 0 ? finished / elapsedMs : null; // items per ms
  const etaMs = m.status !== "running" ? 0 : rate === null ? null : Math.round(queued / rate);
  return {
    ...summary(m),
    counts: { ...m.counts, queued, retrying },
    halted,
    cancelled,
    elapsedMs,
    itemsPerMinute: rate === null ? null : Math.round(rate * 60_000 * 100) / 100,
    etaMs,
  };
}

/** How messages name a store (the local state directory rather than the emulator's bucket). */
const storeLabels = new WeakMap<ObjectStore, string>();

/** Reads a job record; an unknown job id is the user's input fault and names recent job ids. */
export async function readJob(store: ObjectStore, jobId: string): Promise<JobRecord> {
  const job = /^[A-Za-z0-9._-]+$/.test(jobId) ? await store.getJson<JobRecord>(keys.job(jobId)) : undefined;
  if (job) return job;
  const recent = await recentJobIds(store, 5);
  throw new LongdocError(
    "job_invalid",
    `no job '${jobId}' in ${storeLabels.get(store) ?? `s3://${store.bucket}`}` + (recent.length ? `; most recent: ${recent.join(", ")}` : "; there are no runs there yet"),
  );
}

/**
 * What `readProgress` learned so far; pass it back on the next poll so results already read are
 * not read again (a result.json is written once and never changes).
 */
export interface ProgressCache {
  results: Map<string, ItemResult>;
  job?: JobRecord;
}

export const newProgressCache = (): ProgressCache => ({ results: new Map() });

/** The progress of a run from the store: one listing of its items plus the results not read yet. */
export async function readProgress(store: ObjectStore, jobId: string, opts: { now?: () => number; cache?: ProgressCache } = {}): Promise<RunProgress> {
  const cache = opts.cache ?? newProgressCache();
  const job = (cache.job ??= await readJob(store, jobId));
  const prefix = keys.itemsPrefix(jobId);
  const finished = new Set<string>();
  const attempted = new Set<string>();
  for (const key of await store.listKeys(prefix)) {
    const [itemId, file, ...rest] = key.slice(prefix.length).split("/");
    if (!itemId) continue;
    if (file === "result.json" && rest.length === 0) finished.add(itemId);
    else if (file === "attempts") attempted.add(itemId);
  }
  const known = new Set(job.items.map((i) => i.id));
  await Promise.all(
    [...finished]
      .filter((id) => known.has(id) && !cache.results.has(id))
      .map(async (id) => {
        const r = await store.getJson<ItemResult>(keys.item(jobId, id, "result.json"));
        if (r) cache.results.set(id, r);
      }),
  );
  const [halted, cancelled] = await Promise.all([store.exists(keys.halt(jobId)), store.exists(keys.cancel(jobId))]);
  return computeProgress({ job, results: cache.results, attempted, halted, cancelled, now: (opts.now ?? Date.now)() });
}

/** Job ids under runs/, newest first (by the timestamp in the id, then by name). */
export async function recentJobIds(store: ObjectStore, limit = 5): Promise<string[]> {
  const ids: string[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await store.s3.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: "runs/", Delimiter: "/", ContinuationToken: token }));
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) ids.push(p.Prefix.slice("runs/".length, -1));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } catch (e) {
    if ((e as { name?: string }).name === "NoSuchBucket") return [];
    throw e;
  }
  const stamp = (id: string) => /-(\d{8}-\d{6})-[0-9a-f]{4}$/.exec(id)?.[1] ?? "";
  return ids.sort((a, b) => stamp(b).localeCompare(stamp(a)) || b.localeCompare(a)).slice(0, limit);
}

/** "1h 02m", "3m 05s", "12s", "0.4s"; "?" when unknown. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "?";
  if (ms < 10_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

// ── Local state ──────────────────────────────────────────────────────────────────────────────
//
// `longdoc run` keeps the emulator's state in SQLite under --state. fauxqs loads that state
// (object metadata, queues) into memory when it starts and writes every change through, but
// never re-reads it: a process that opened the state sees what was there at that moment, and
// objects another process writes afterwards stay invisible to it. So a reader opens its own
// emulator on the directory, and `watch` below opens a fresh one whenever the files change.
// The reader only lists and gets (it creates no bucket or queue), so it never writes the state.

export interface LocalState {
  dir: string;
  store: ObjectStore;
  close(): Promise<void>;
}

const dbFile = (dir: string) => path.join(dir, "fauxqs.db");

/** Opens the persisted emulator state read-only; a clear input error when there is none. */
export async function openLocalState(dir: string): Promise<LocalState> {
  if (!existsSync(dbFile(dir))) {
    throw new LongdocError(
      "job_invalid",
      `no local runs in '${dir}' (no emulator state there): run a job with 'longdoc run' first, or pass --state with the directory it used`,
    );
  }
  const server = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false, dataDir: dir });
  const { s3, sqs } = localClients(`http://127.0.0.1:${server.port}`);
  sqs.destroy();
  const close = async () => {
    s3.destroy();
    await server.stop();
  };
  try {
    const buckets = ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name!).filter(Boolean);
    // longdoc's state holds one runs bucket; prefer one that has runs in it.
    let bucket = buckets[0] ?? "longdoc-runs";
    for (const b of buckets) {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: b, Prefix: "runs/", MaxKeys: 1 }));
      if ((page.Contents ?? []).length > 0) {
        bucket = b;
        break;
      }
    }
    const store = new ObjectStore(s3, bucket);
    storeLabels.set(store, `the local state '${dir}'`);
    return { dir, store, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** A signature of the state files: changes whenever another process writes the state. */
export function stateSignature(dir: string): string {
  return ["fauxqs.db", "fauxqs.db-wal"]
    .map((f) => {
      try {
        const s = statSync(path.join(dir, f));
        return `${s.size}:${s.mtimeMs}`;
      } catch {
        return "-";
      }
    })
    .join("|");
}

/** Where `status` and `results` read a run: the local state (`localStateReader`) or the deployed bucket (`deployedStoreReader`). */
export interface StoreReader {
  /** Runs `fn` on a store holding the run; opened on first use. */
  read<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Keeps a reader of the local state current: it reopens the emulator when the files changed
 * since it was opened (another process, e.g. a running `longdoc run`, wrote to them).
 */
export function localStateReader(dir: string): StoreReader & { store(): Promise<ObjectStore> } {
  let open: LocalState | undefined;
  let signature = "";
  const reader = {
    async store(): Promise<ObjectStore> {
      if (!open || stateSignature(dir) !== signature) {
        await reader.close();
        signature = stateSignature(dir);
        open = await openLocalState(dir);
      }
      return open.store;
    },
    /**
     * Runs `fn` on a current store. An object another process rewrote after the reader opened
     * comes back with its new body under its old length and checksum, which the SDK rejects; when
     * the state changed meanwhile, `fn` runs again on a freshly opened reader.
     */
    async read<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        const store = await reader.store();
        try {
          return await fn(store);
        } catch (e) {
          if (LongdocError.is(e) || attempt >= 3 || stateSignature(dir) === signature) throw e;
        }
      }
    },
    async close(): Promise<void> {
      const o = open;
      open = undefined;
      await o?.close();
    },
  };
  return reader;
}

// ── Deployed stack ───────────────────────────────────────────────────────────────────────────
//
// A deployed run lives in the stack's bucket, which S3 serves current on every request: no
// reopening is needed, one client does for the whole of a `--watch`.

/** Stands in for a task queue URL when the stack is known by its bucket alone; never called. */
const NO_QUEUE = "https://queue.invalid/not-needed-to-read-runs";

/**
 * The deployed stack's coordinates as `submit` and `retry --deployed` find them
 * (`LONGDOC_BUCKET` / `LONGDOC_QUEUE_URL`, else `.sst/outputs.json`). Reading a run needs the
 * bucket only, so a stack whose queue URL is missing (or unusable) is still read by its bucket
 * (its `queueUrl` is then a placeholder); without a bucket, the error names both ways to give it.
 */
export function readDeployedBucket(env: Record<string, string | undefined>, cwd = process.cwd()): StackCoordinates {
  try {
    return readStackCoordinates(env, cwd);
  } catch (e) {
    if (!LongdocError.is(e)) throw e;
    try {
      return readStackCoordinates({ ...env, LONGDOC_QUEUE_URL: NO_QUEUE }, cwd);
    } catch {
      throw e;
    }
  }
}

/**
 * Reads runs in the deployed stack's bucket, with an S3 client built as `retry --deployed` builds
 * it (the SDK's credential chain and region, else the queue URL's region; AWS_ENDPOINT_URL for an
 * emulator). Coordinates are read on first use, so a missing stack is reported where the caller
 * handles errors. An unknown job names the bucket and where it came from.
 */
export function deployedStoreReader(env: Record<string, string | undefined>, cwd = process.cwd()): StoreReader {
  let open: { store: ObjectStore; close(): void } | undefined;
  return {
    async read<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> {
      if (!open) {
        const coords = readDeployedBucket(env, cwd);
        const { s3, sqs } = stackClients(coords, env);
        sqs.destroy();
        const store = new ObjectStore(s3, coords.bucket);
        storeLabels.set(store, `s3://${coords.bucket} (bucket from ${coords.from.bucket})`);
        open = { store, close: () => s3.destroy() };
      }
      return fn(open.store);
    },
    async close(): Promise<void> {
      open?.close();
      open = undefined;
    },
  };
}
