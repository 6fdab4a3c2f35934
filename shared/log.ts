import pino from "pino";

/** The logging port the core library uses; pino fits it, and tests can pass a recorder. */
export interface Log {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** JSON lines to stderr (CloudWatch on Lambda). Keys and auth headers never reach a log line. */
export function createLog(opts: { level?: string; name?: string } = {}): Log {
  return pino(
    {
      name: opts.name ?? "longdoc",
      level: opts.level ?? "info",
      redact: { paths: ["apiKey", "*.apiKey", "authorization", "*.authorization", "headers.authorization"], censor: "[redacted]" },
    },
    // Synchronous: Lambda freezes the process after the handler returns, and an async buffer would lose the last lines.
    pino.destination({ dest: 2, sync: true }),
  );
}

export const silentLog: Log = { info() {}, warn() {}, error() {} };
