import { tmpdir } from "node:os";
import path from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Most files wait on child processes, streams and timers: four at a time keep two cores busy.
    maxWorkers: 4,
    // Files share their worker's module graph (the AWS SDK, the emulators, the simulator load once
    // per worker, not once per file: about a fifth of a small file's time). Nothing in the tests
    // changes process-wide state; the worker's module caches are keyed by job ids, unique per run.
    isolate: false,
    env: {
      // Every CLI spawn and local worker process compiles the same modules: Node keeps the
      // compiled code on disk, so each later process starts in about half the CPU.
      NODE_COMPILE_CACHE: path.join(tmpdir(), "longdoc-test-compile-cache"),
    },
  },
});
