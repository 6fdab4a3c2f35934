import { tmpdir } from "node:os";
import path from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Files that run fault suites or several CLI runs in a row, longest first: started first, the four
 * workers end together. On a fresh clone vitest has no timings of earlier runs to order by.
 */
const LONG_FILES = ["hardening-run-faults", "local-state", "control", "hardening-cli", "hardening-run-inputs", "batch-mode", "paid-once", "fleet", "fleet-quota", "faults", "infra-faults", "documents-limits", "install", "documents", "webhook-delivery", "security-reads"];

class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = LONG_FILES.indexOf(path.basename(f.moduleId, ".test.ts"));
      return i < 0 ? LONG_FILES.length : i;
    };
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    sequence: { sequencer: LongFilesFirst },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Most files wait on child processes, streams and timers: five at a time keep two cores busy
    // (npm test 226 s warm here, against 251-262 s with four).
    maxWorkers: 5,
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
