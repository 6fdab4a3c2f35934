import { type Command, InvalidArgumentError } from "commander";
import { parseFaultSpec, startSimulator, type SimCall } from "../../shared/sim/index.ts";
import type { Edge } from "../edge.ts";

const DEFAULT_PORT = 8787;

function wholeNumber(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got '${value}'`);
    return n;
  };
}

function faultSpec(value: string): string {
  try {
    parseFaultSpec(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return value;
}

interface SimFlags {
  port: number;
  rpm?: number;
  tpm?: number;
  faults?: string;
  apiKey?: string;
  decodeTps: number;
  latencyMs: number;
  catalog?: string;
  perSecond: boolean;
  quiet?: boolean;
  batchMs: number;
}

/** What the request ended as: `ok`, `error` (status and code are on the line), `client closed streamed=N`, … */
const outcomeOf = (c: SimCall) => (c.outcome === "client_closed" ? `client closed streamed=${c.completionTokens}` : (c.outcome ?? ""));

/** One line per request, written when it ends. */
export const describeCall = (c: SimCall) =>
  [
    new Date(c.receivedAt).toISOString(),
    `#${c.seq}`,
    c.status || (c.outcome === "client_closed" ? "-" : "reset"),
    c.model ?? "-",
    c.stream ? "stream" : "json",
    c.thinking ? "thinking" : "",
    `prompt=${c.promptTokens}`,
    `completion=${c.completionTokens}`,
    c.cachedTokens ? `cached=${c.cachedTokens}` : "",
    `docs=${c.documents.length}`,
    c.fault ? `fault=${c.fault}` : "",
    c.errorCode ? `error=${c.errorCode}` : "",
    outcomeOf(c),
    c.outcome === "ok" ? (c.finishReason ?? "") : "",
  ]
    .filter((x) => x !== "")
    .join(" ");

/** `longdoc sim`: the Qwen API simulator on its own, until Ctrl-C. */
export function registerSim(program: Command, edge: Edge): void {
  program
    .command("sim")
    .description("run the local Qwen3-Max API simulator (OpenAI-compatible) until Ctrl-C")
    .option("--port <P>", `port on 127.0.0.1 (0 = any free port)`, wholeNumber("--port", 0), DEFAULT_PORT)
    .option("--rpm <N>", "requests per minute per model (also N/60 per second)", wholeNumber("--rpm", 1))
    .option("--tpm <N>", "tokens per minute per model (also N/60 per second)", wholeNumber("--tpm", 1))
    .option("--faults <SPEC>", "random faults, e.g. 500:0.1,503:0.05,midstream:0.05,429:0.1,seed=7", faultSpec)
    .option("--api-key <KEY>", "require Authorization: Bearer KEY (default: accept any key)")
    .option("--decode-tps <N>", "output tokens per second (0 = as fast as possible)", wholeNumber("--decode-tps", 0), 0)
    .option("--latency-ms <MS>", "delay before each response", wholeNumber("--latency-ms", 0), 0)
    .option("--catalog <FILE>", "JSON file overriding shared/model/models.json numbers")
    .option("--no-per-second", "enforce only the minute windows, not RPM/60 and TPM/60 per second")
    .option("--quiet", "do not log each request")
    .option("--batch-ms <MS>", "Batch API: time from create to completed (validating, in progress, finalizing a third each)", wholeNumber("--batch-ms", 0), 3000)
    .action(async (flags: SimFlags) => {
      const sim = await startSimulator({
        port: flags.port,
        host: "127.0.0.1",
        rpm: flags.rpm,
        tpm: flags.tpm,
        faults: flags.faults,
        apiKey: flags.apiKey,
        decodeTokensPerSecond: flags.decodeTps,
        latencyMs: flags.latencyMs,
        catalogPath: flags.catalog,
        perSecondLimits: flags.perSecond,
        // Logged as each request ends, so one that never finishes holds no other line back.
        onCallEnd: flags.quiet ? undefined : (c) => process.stderr.write(`${describeCall(c)}\n`),
        batch: { processingMs: flags.batchMs },
      });
      const out = process.stdout;
      out.write(`longdoc sim: Qwen3-Max API simulator listening at ${sim.baseURL}\n`);
      out.write(`  limits: rpm=${flags.rpm ?? "unlimited"} tpm=${flags.tpm ?? "unlimited"}${flags.perSecond ? " (and per second: /60)" : ""}\n`);
      if (flags.faults) out.write(`  faults: ${flags.faults}\n`);
      out.write(`  auth: ${flags.apiKey ? "Bearer key required" : "any API key accepted"}\n`);
      // longdoc uses QWEN_BASE_URL only with DASHSCOPE_API_KEY set (without a key, `run` starts its own simulator and says so).
      out.write(
        `Point longdoc (or any OpenAI-compatible client) at it (longdoc needs both):\n  export QWEN_BASE_URL=${sim.baseURL}\n  export DASHSCOPE_API_KEY=${flags.apiKey ? "<the --api-key value>" : "sk-local"}\n`,
      );
      out.write(`Press Ctrl-C to stop.\n`);

      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.off("SIGINT", onInt);
          process.off("SIGTERM", onTerm);
          out.write(`\nlongdoc sim: ${signal}, stopping after ${sim.calls.length} request(s)\n`);
          resolve();
        };
        const onInt = () => stop("SIGINT");
        const onTerm = () => stop("SIGTERM");
        process.on("SIGINT", onInt);
        process.on("SIGTERM", onTerm);
      });
      await sim.stop();
    });
}
