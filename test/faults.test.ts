import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// The small fault suite (test/faults/): 40 + 6 items through three worker processes while every
// model fault kind, a SIGKILL mid-stream, a stream slowed into the deadline, duplicate and poison
// messages, S3/DynamoDB errors the SDK retries, a corrupt PDF, an oversize document and a second
// job whose key is refused all happen. `npm run test:faults` is the full one (200 + 20 items).
describe("the fleet under faults (small suite)", () => {
  it("loses nothing, pays nothing twice, leaves no debris, leaks no key and ends every item as it should", async () => {
    const run = await promisify(execFile)(process.execPath, ["test/faults/run.ts", "--small"], { encoding: "utf8", timeout: 170_000, maxBuffer: 32 * 1024 * 1024 }).catch(
      (e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? "", stderr: e.stderr ?? "" }),
    );
    const lines = run.stdout.trimEnd().split("\n");
    const summary = JSON.parse(lines.at(-1)!) as Record<string, unknown> & { faults: Record<string, number>; details: { manifests: Record<string, unknown>; kills: unknown[] } };
    const report = `${run.stdout}\n${run.stderr.slice(-4000)}`;
    expect(summary, report).toMatchObject({ suite: "small", items: 46, lost: 0, notInManifest: 0, duplicateSuccessfulCalls: 0, partialDebris: 0, dlqMessages: 0, keyLeaks: 0, logKeyLeaks: 0, wrongOutcomes: 0, quotaExceeded: false, ok: true });
    // Each fault kind really happened (the first requests get one of each; the rest are random).
    for (const kind of ["429 limit_requests (RPM)", "429 insufficient_quota (TPM)", "429 limit_burst_rate (surge)", "500 internal_error", "503 ModelUnavailable", "stream cut mid-way (socket dropped)", "slow stream into the deadline", "worker SIGKILL mid-stream"]) {
      expect(summary.faults[kind], `${kind}\n${report}`).toBeGreaterThanOrEqual(1);
    }
    expect(summary.faults["duplicate delivery at once"]).toBe(4);
    expect(summary.poisonDroppedAndLogged).toBe(1);
    // The corrupt PDF and the oversize document fail their own items; the refused key halts only its own job.
    // (Which other items end failed is random: one whose 3 attempts all met transient faults; wrongOutcomes checks them.)
    expect(summary.details.manifests, report).toMatchObject({ main: "partial", auth: "halted", mainCounts: { total: 40 }, authCounts: { total: 6, succeeded: 0 } });
    expect(lines.find((l) => l.startsWith("corrupt PDF")), report).toMatch(/1 failed document_corrupt$/);
    expect(lines.find((l) => l.startsWith("oversize document")), report).toMatch(/1 failed document_too_large$/);
    expect(lines.find((l) => l.startsWith("worker SIGKILL mid-stream")), report).toMatch(/^worker SIGKILL mid-stream\s+1\s+1\s+1 (succeeded|failed model_\w+)$/);
  }, 180_000);
});
