import { randomUUID } from "node:crypto";
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { errorBody, providerErrors } from "../../shared/sim/errors.ts";

/** One chat request a worker process sent, as the proxy saw it. */
export interface ProxiedCall {
  seq: number;
  /** The worker's side of the connection: finds the process that sent it (see pids.ts). */
  remotePort: number;
  model: string;
  /** The `# fault-doc <tag>` line of the document in the request, if any. */
  tag: string | null;
  bodyBytes: number;
  startedAt: number;
  status: number;
  /** The simulator's request id (SimCall.requestId), read from the response (`chatcmpl-<id>` or `request_id`). */
  simRequestId: string | null;
  /** The whole response reached the worker (false: the worker went away or the stream was cut). */
  delivered: boolean;
  /** What the proxy did to it: answered 401 itself, trickled it past the deadline, held it for a kill, or nothing. */
  action: "auth" | "slow" | "hold" | null;
  /** Response chunks passed on to the worker so far. */
  chunksSent: number;
  finishedAt: number | null;
}

export interface FaultProxyOptions {
  target: string;
  /** Requests for this model are refused with the provider's 401 invalid_api_key (a job-level auth fault). */
  authFailModel?: string;
  /** The first request of each of these document tags is trickled, one chunk every `slowChunkMs`. */
  slowTags?: Set<string>;
  slowChunkMs?: number;
  /** The first answered request of each of these tags stops after its first chunk for up to `holdMs` (or until the worker goes away), so a test can kill its worker mid-stream. */
  holdTags?: Set<string>;
  holdMs?: number;
}

export interface FaultProxy {
  baseURL: string;
  calls: ProxiedCall[];
  /** Chat requests whose response is still streaming. */
  inFlight(): ProxiedCall[];
  stop(): Promise<void>;
}

/**
 * The model endpoint the fleet calls in the fault suite: a loopback proxy in front of the
 * simulator that records every chat request (which worker sent it, whether its answer arrived
 * whole) and plays the faults the simulator cannot aim at one job or one document: a key refused
 * for one job's model, and a stream slowed until the worker's deadline ends it.
 */
export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(o.target);
  const calls: ProxiedCall[] = [];
  const slowSeen = new Set<string>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const text = body.toString("utf8");
    const model = /"model"\s*:\s*"([^"]+)"/.exec(text)?.[1] ?? "";
    const tag = /# fault-doc (\S+?)\\n/.exec(text)?.[1] ?? null;
    const call: ProxiedCall = { seq: calls.length, remotePort: req.socket.remotePort ?? 0, model, tag, bodyBytes: body.length, startedAt: Date.now(), status: 0, simRequestId: null, delivered: false, action: null, chunksSent: 0, finishedAt: null };
    if (req.url?.endsWith("/chat/completions")) calls.push(call);
    const done = () => {
      call.finishedAt ??= Date.now();
    };
    res.on("finish", done);
    res.on("close", done);

    if (o.authFailModel && model === o.authFailModel) {
      call.action = "auth";
      call.status = 401;
      const payload = JSON.stringify(errorBody(providerErrors.badKey, randomUUID()));
      res.writeHead(401, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
      res.end(payload);
      return;
    }
    // Slowed or held: the first request of the tag that the simulator answers (not one it refused).
    const wantsSlow = tag !== null && o.slowTags?.has(tag) === true;
    const wantsHold = tag !== null && o.holdTags?.has(tag) === true;
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, async (up) => {
      call.status = up.statusCode ?? 0;
      const chosen = call.status === 200 && (wantsSlow || wantsHold) && !slowSeen.has(tag!);
      if (chosen) {
        slowSeen.add(tag!);
        call.action = wantsSlow ? "slow" : "hold";
      }
      const slow = chosen && wantsSlow;
      const hold = chosen && wantsHold;
      const closed = new Promise<void>((r) => res.once("close", () => r()));
      res.writeHead(up.statusCode ?? 502, up.headers);
      let ended = false;
      up.on("end", () => (ended = true));
      try {
        for await (const chunk of up as AsyncIterable<Buffer>) {
          const t = chunk.toString("utf8");
          call.simRequestId ??= /"id"\s*:\s*"chatcmpl-([^"]+)"/.exec(t)?.[1] ?? /"request_id"\s*:\s*"([^"]+)"/.exec(t)?.[1] ?? null;
          if (slow) await sleep(o.slowChunkMs ?? 2000);
          if (hold && call.chunksSent === 1) await Promise.race([closed, sleep(o.holdMs ?? 15_000)]);
          if (res.destroyed) return up.destroy();
          res.write(chunk);
          call.chunksSent++;
        }
      } catch {
        // The simulator cut the stream (a `drop` fault): cut the worker's too.
        return res.destroy();
      }
      if (!ended) return res.destroy();
      res.end(() => {
        call.delivered = true;
      });
    });
    upstream.on("error", () => res.destroy());
    // The worker went away (killed, or it aborted at its deadline): the simulator sees the client close.
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseURL: `http://127.0.0.1:${port}${target.pathname}`,
    calls,
    inFlight: () => calls.filter((c) => c.finishedAt === null && c.status === 200),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
