import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start servers on loopback; two cores, so keep files from fighting.
    maxWorkers: 2,
    // Files share their worker's module graph (the AWS SDK, the emulators, the simulator load once
    // per worker, not once per file: about a fifth of a small file's time). Nothing in the tests
    // changes process-wide state; the worker's module caches are keyed by job ids, unique per run.
    isolate: false,
  },
});
