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

/**
 * A URL fit to print: any user name and password in it are replaced by `***` (e.g.
 * `http://user:secret@host/v1` → `http://***:***@host/v1`), and query parameters that look like
 * keys or tokens are masked. Text that does not parse as a URL is scrubbed with `redactSecrets`.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not a URL: everything between the scheme and the last '@' before the path could be a credential.
    return redactSecrets(url.replace(/^([^:/]*:\/\/)[^/?#]*@/, "$1***@"));
  }
  if (u.username) u.username = "***";
  if (u.password) u.password = "***";
  for (const k of [...u.searchParams.keys()]) {
    if (/key|token|secret|signature|password|auth/i.test(k)) u.searchParams.set(k, "***");
  }
  return u.toString();
}

/** Free text with the credentials of any `scheme://user:password@host` URL in it replaced by `***`. */
export const redactSecrets = (text: string): string =>
  text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>]+)@/gi, (_, scheme: string, cred: string) => `${scheme}${cred.includes(":") ? "***:***" : "***"}@`);
