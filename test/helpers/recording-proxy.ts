import { createServer, request, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The body as sent (a chat request's JSON). */
  body: string;
}

export interface RecordingProxy {
  /** Use as QWEN_BASE_URL: same path as the target's base URL, on the proxy's port. */
  baseURL: string;
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of the simulator that keeps every request body it forwards, so a
 * test can read exactly what a worker process sent to the model (messages, system prompt,
 * headers) without the simulator having to keep raw requests. Responses stream through untouched.
 */
export async function startRecordingProxy(targetBaseURL: string): Promise<RecordingProxy> {
  const target = new URL(targetBaseURL);
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body: body.toString("utf8") });
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseURL: `http://127.0.0.1:${port}${target.pathname}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
