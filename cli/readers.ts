import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { LongdocError } from "../shared/errors.ts";
import { localClients } from "../shared/local/clients.ts";
import { keys, listBuckets, ObjectStore } from "../shared/run/store.ts";
import { readStackCoordinates, stackClients, type StackCoordinates } from "./stack.ts";

/**
 * Where `status` and `results` read a run: the persisted local state, or the deployed stack's
 * bucket. Both hand back an ObjectStore, so the readers above them do not know which.
 */

// Local state.
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
  // Loaded here: validate, estimate and the deployed commands never open a local state.
  const { startFauxqs } = await import("fauxqs");
  const server = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false, dataDir: dir });
  const { s3, sqs } = localClients(`http://127.0.0.1:${server.port}`);
  sqs.destroy();
  const close = async () => {
    s3.destroy();
    await server.stop();
  };
  try {
    const buckets = await listBuckets(s3);
    // longdoc's state holds one runs bucket; prefer one that has runs in it.
    let bucket = buckets[0] ?? "longdoc-runs";
    for (const b of buckets) {
      if (await new ObjectStore(s3, b).hasAny(keys.runsPrefix)) {
        bucket = b;
        break;
      }
    }
    return { dir, store: new ObjectStore(s3, bucket, `the local state '${dir}'`), close };
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
     * Runs `fn` on a current store. The emulator reads object metadata once, when opened: an
     * object another process wrote after that is missing from its listings, and one it rewrote
     * comes back with its new body under its old metadata. When `fn` fails and the state changed
     * meanwhile, it runs again on a freshly opened reader.
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

// Deployed stack.
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
export function readDeployedBucket(env: Record<string, string | undefined>, cwd = process.cwd(), stage?: string): StackCoordinates {
  try {
    return readStackCoordinates(env, cwd, stage);
  } catch (e) {
    if (!LongdocError.is(e) || e.code === "usage") throw e;
    try {
      return readStackCoordinates({ ...env, LONGDOC_QUEUE_URL: NO_QUEUE }, cwd, stage);
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
export function deployedStoreReader(env: Record<string, string | undefined>, cwd = process.cwd(), stage?: string): StoreReader {
  let open: { store: ObjectStore; close(): void } | undefined;
  return {
    async read<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> {
      if (!open) {
        const coords = readDeployedBucket(env, cwd, stage);
        const { s3, sqs } = stackClients(coords, env);
        sqs.destroy();
        const store = new ObjectStore(s3, coords.bucket, `s3://${coords.bucket} (bucket from ${coords.from.bucket})`);
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
