// The in-memory S3 the unit tests use, held to the emulator's answers: ObjectStore runs the same
// checks on both, so a unit test cannot pass on a stand-in that behaves unlike the stack.
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { startFauxqs, type FauxqsServer } from "fauxqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localClients } from "../shared/local/clients.ts";
import { ObjectStore } from "../shared/run/store.ts";
import { memoryS3 } from "./helpers/memory-s3.ts";

const BUCKET = "runs";
let server: FauxqsServer;
let emulated: S3Client;

beforeAll(async () => {
  server = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false });
  emulated = localClients(`http://127.0.0.1:${server.port}`).s3;
  await emulated.send(new CreateBucketCommand({ Bucket: BUCKET }));
});
afterAll(async () => {
  emulated?.destroy();
  await server?.stop();
});

describe.each([
  { s3: "the emulator (fauxqs)", make: () => emulated },
  { s3: "memory", make: () => memoryS3([BUCKET]) },
])("ObjectStore on $s3", ({ make }) => {
  let store: ObjectStore;
  beforeAll(() => {
    store = new ObjectStore(make(), BUCKET);
  });

  it("reads back what it wrote, and says a missing key is missing", async () => {
    expect(await store.getBytes("a/missing.json")).toBeUndefined();
    expect(await store.getJson("a/missing.json")).toBeUndefined();
    expect(await store.exists("a/missing.json")).toBe(false);
    await store.putJson("a/x.json", { n: 1, s: "é" });
    expect(await store.getJson("a/x.json")).toEqual({ n: 1, s: "é" });
    expect(await store.exists("a/x.json")).toBe(true);
    await store.put("a/bytes.bin", new Uint8Array([0, 255, 7]), "application/octet-stream");
    expect([...(await store.getBytes("a/bytes.bin"))!]).toEqual([0, 255, 7]);
    await store.put("a/empty.txt", "", "text/plain");
    expect(await store.getBytes("a/empty.txt")).toEqual(new Uint8Array());
  });

  it("writes if absent the first time", async () => {
    expect(await store.putJsonIfAbsent("b/once.json", { first: true })).toBe(true);
    expect(await store.getJson("b/once.json")).toEqual({ first: true });
  });

  it("copies (keys with spaces and non-ASCII included) and deletes; deleting a missing key is no error", async () => {
    await store.putJson("c/a doc é.json", { v: 1 });
    await store.copy("c/a doc é.json", "c/copy/a doc é.json");
    expect(await store.getJson("c/copy/a doc é.json")).toEqual({ v: 1 });
    await store.delete("c/a doc é.json");
    expect(await store.exists("c/a doc é.json")).toBe(false);
    await store.delete("c/never.json");
  });

  it("lists keys under a prefix in order with their sizes, and folders one level down", async () => {
    await Promise.all(["d/items/b/result.json", "d/items/a/result.json", "d/items/a/attempts/1.json", "d/job.json", "dx/other.json"].map((k) => store.putJson(k, {})));
    expect(await store.listKeys("d/")).toEqual(["d/items/a/attempts/1.json", "d/items/a/result.json", "d/items/b/result.json", "d/job.json"]);
    expect(await store.listFolders("d/items/")).toEqual(["a", "b"]);
    expect(await store.listFolders("d/")).toEqual(["items"]);
    expect(await store.hasAny("d/items/")).toBe(true);
    expect(await store.hasAny("e/")).toBe(false);
    expect(await store.listObjects("d/items/b/")).toEqual([{ key: "d/items/b/result.json", bytes: 3 }]);
  });

  it("lists no folders in a bucket that does not exist", async () => {
    expect(await new ObjectStore((store as { s3: S3Client }).s3, "no-such-bucket").listFolders("x/")).toEqual([]);
  });
});

describe("memory S3 beyond the emulator", () => {
  it("refuses a second write-if-absent, as S3 does (the emulator does not enforce it)", async () => {
    const store = new ObjectStore(memoryS3([BUCKET]), BUCKET);
    expect(await store.putJsonIfAbsent("once.json", { first: true })).toBe(true);
    expect(await store.putJsonIfAbsent("once.json", { first: false })).toBe(false);
    expect(await store.getJson("once.json")).toEqual({ first: true });
  });

  it("pages a listing past 1,000 keys, as S3 does (too slow to write 1,001 objects to the emulator in every run)", async () => {
    const store = new ObjectStore(memoryS3([BUCKET]), BUCKET);
    const many = Array.from({ length: 1_001 }, (_, i) => `p/${String(i).padStart(4, "0")}.json`);
    await Promise.all(many.map((k) => store.put(k, "1", "text/plain")));
    const sent = (store.s3 as unknown as { sent: string[] }).sent;
    const before = sent.length;
    expect((await store.listObjects("p/")).map((o) => o.key)).toEqual(many);
    expect(sent.length - before).toBe(2);
  });
});
