import { fileURLToPath } from "node:url";
import { workerEntry } from "../shared/local/worker-bundle.ts";

/** The local worker's bundle, built once before the test files start rather than by several at once. */
export default async function setup(): Promise<void> {
  await workerEntry(fileURLToPath(new URL("../shared/local/worker-process.ts", import.meta.url)));
}
