import { readFile } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Ajv } from "ajv";
import { beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../shared/log.ts";
import { runLocalJob } from "../shared/local/run.ts";
import type { ItemResult } from "../shared/run/manifest.ts";
import type { ModelClient } from "../shared/model/client.ts";
import { parseSimProof } from "../shared/sim/index.ts";
import { useLoopback } from "./helpers/loopback.ts";
import { loadSettings } from "../shared/settings.ts";

const JOB = "jobs/examples/financial-statements.yaml";

describe("JSON answers: the shipped workbook job", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 1 } });
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(path.join(tmpdir(), "longdoc-json-"));
  });

  it("sends each whole workbook with the schema and keeps answers that match it", async () => {
    const before = loop.sim.calls.length;
    const run = await runLocalJob({ inProcess: true, jobFile: JOB, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack });
    expect(run.manifest.status).toBe("succeeded");
    const calls = loop.sim.calls.slice(before);
    expect(calls.every((c) => !c.thinking)).toBe(true);
    const schema = JSON.parse(await readFile("jobs/examples/schemas/financial-summary.json", "utf8"));
    const validate = new Ajv({ strict: false }).compile(schema);
    for (const item of run.manifest.items) {
      expect(item.answer).toBe(`items/${item.id}/answer.json`);
      const answer = JSON.parse(await readFile(path.join(run.outDir, item.answer!), "utf8"));
      expect(validate(answer)).toBe(true);
      const result = JSON.parse(await readFile(path.join(run.outDir, "items", item.id, "result.json"), "utf8")) as ItemResult;
      expect(result.documents[0]!.format).toBe("xlsx");
      // The simulator's proof sits in the answer's first free string: the whole workbook arrived.
      const proof = parseSimProof(JSON.stringify(answer));
      expect(proof[0]).toMatchObject({ tokens: result.documents[0]!.tokens, sha256: result.documents[0]!.sha256 });
    }
    expect(run.manifest.items[0]!.usage.inputTokens).toBeGreaterThan(140_000);
  });

  it("fails an item whose answer does not match the schema, with the reason", async () => {
    const model: ModelClient = {
      async chat() {
        return {
          cacheType: "implicit",
          reasoning: "",
          answer: JSON.stringify({ company: "Nestlé", period: "H1 2023" }),
          finishReason: "stop",
          requestId: "chatcmpl-test",
          usage: { inputTokens: 10, outputTokens: 5, reasoningTokens: 0, cachedTokens: 0 },
        };
      },
    };
    const run = await runLocalJob({ jobFile: JOB, outDir: out, settings: loadSettings(loop.env()), log: silentLog, stack: loop.stack, model });
    expect(run.manifest.status).toBe("failed");
    for (const item of run.manifest.items) {
      expect(item.status).toBe("failed");
      expect(item.error).toMatchObject({ kind: "output_invalid", message: expect.stringContaining("must have required property 'currency'") });
      // The answer is kept for inspection even though it failed the schema, never as answer.json.
      expect(item.answer).toBeNull();
      expect(JSON.parse(await readFile(path.join(run.outDir, "items", item.id, "answer.invalid.json"), "utf8"))).toMatchObject({ company: "Nestlé" });
    }
  });
});
