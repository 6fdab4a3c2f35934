/**
 * TEST ONLY: AWS errors injected into a local worker process's S3 and DynamoDB clients through the
 * SDK's middleware stack, for the fault suite (test/faults/). Off unless the fleet is started with
 * `awsFaults` (LONGDOC_TEST_AWS_FAULTS); nothing deployed imports this file.
 *
 * A rule fails a share of one service's commands with the error AWS would send (S3 `SlowDown` 503
 * and `InternalError` 500, DynamoDB `ThrottlingException` 400 and `InternalServerError` 500).
 * `insideRetries: true` injects below the SDK's retry middleware, as a real response would arrive,
 * so the SDK retries it; `false` injects above it, so the caller sees the error as if every retry
 * had failed. Each injection appends one line (`<rule name>`) to `countsFile`, so the suite can
 * count them even in a process that was killed. DynamoDB's ConditionalCheckFailedException
 * responses are counted (`dynamodb-conditional-race`), not injected: a fabricated one would
 * describe a write that never happened.
 */
import { appendFileSync } from "node:fs";
import { mulberry32 } from "../random.ts";

export interface AwsFaultRule {
  /** Names the rule in the counts file and the suite's matrix. */
  name: string;
  service: "s3" | "dynamodb";
  /** Command names (GetObject, PutObject, UpdateItem...); empty = every command. */
  commands: string[];
  error: "SlowDown" | "InternalError" | "ThrottlingException" | "InternalServerError";
  probability: number;
  insideRetries: boolean;
  /** At most this many injections per process. */
  max?: number;
}

export interface AwsFaultSpec {
  seed: number;
  countsFile: string;
  rules: AwsFaultRule[];
}

/** The text every injected error carries, so results and logs can be traced back to the suite. */
export const INJECTED_MARK = "longdoc-test-fault";

const STATUS: Record<AwsFaultRule["error"], number> = { SlowDown: 503, InternalError: 500, ThrottlingException: 400, InternalServerError: 500 };

function awsError(rule: AwsFaultRule, command: string): Error {
  const e = new Error(`${rule.error}: injected by the fault suite on ${command} (${INJECTED_MARK} ${rule.name})`);
  const throttling = rule.error === "SlowDown" || rule.error === "ThrottlingException";
  Object.assign(e, {
    name: rule.error,
    $fault: STATUS[rule.error] >= 500 ? "server" : "client",
    $metadata: { httpStatusCode: STATUS[rule.error], attempts: 1, totalRetryDelay: 0 },
    ...(throttling && { $retryable: { throttling: true } }),
  });
  return e;
}

type Stack = { add(middleware: unknown, options: unknown): void };

/** Installs the spec's rules for one client; returns nothing, counts go to the spec's file. */
export function installAwsFaults(spec: AwsFaultSpec, service: AwsFaultRule["service"], client: { middlewareStack: Stack }, seedOffset: number): void {
  const rng = mulberry32(spec.seed * 1009 + seedOffset);
  const used = new Map<string, number>();
  const count = (name: string) => appendFileSync(spec.countsFile, `${name}\n`);
  for (const insideRetries of [false, true]) {
    const rules = spec.rules.filter((r) => r.service === service && r.insideRetries === insideRetries);
    if (rules.length === 0 && !(insideRetries && service === "dynamodb")) continue;
    const middleware =
      (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) =>
      async (args: unknown): Promise<unknown> => {
        const command = (context.commandName ?? "").replace(/Command$/, "");
        for (const r of rules) {
          if (r.commands.length && !r.commands.includes(command)) continue;
          if ((used.get(r.name) ?? 0) >= (r.max ?? Infinity)) continue;
          if (rng() >= r.probability) continue;
          used.set(r.name, (used.get(r.name) ?? 0) + 1);
          count(r.name);
          throw awsError(r, command);
        }
        try {
          return await next(args);
        } catch (e) {
          if (insideRetries && (e as { name?: string }).name === "ConditionalCheckFailedException") count("dynamodb-conditional-race");
          throw e;
        }
      };
    // Retries live in the finalizeRequest step: deserialize runs inside them, initialize outside.
    client.middlewareStack.add(middleware, { step: insideRetries ? "deserialize" : "initialize", name: `longdocTestFaults${insideRetries ? "Inside" : "Outside"}`, priority: "low" });
  }
}

export function parseAwsFaultSpec(raw: string): AwsFaultSpec {
  const spec = JSON.parse(raw) as AwsFaultSpec;
  if (typeof spec.countsFile !== "string" || !Array.isArray(spec.rules)) throw new Error("LONGDOC_TEST_AWS_FAULTS: expected {seed, countsFile, rules[]}");
  return spec;
}
