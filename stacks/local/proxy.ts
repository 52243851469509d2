/**
 * The local stack's public entry: HTTPS on `https://localhost:<PORT>` terminating TLS in front of the gateway's plain
 * HTTP port (in the cloud the ingress does this). Bodies stream both ways (uploads, server-sent events, PDFs).
 *
 * `GET /readyz` is answered here: 200 only when every process of the stack answers its own `/readyz` with 200
 * (CONTRACTS §1); the body names each one. The public paths go to the gateway, as the cloud's ingress routes them;
 * anything else (`/metrics`, `/healthz`) is 404 here as it is there.
 */
import { type ClientRequest, type IncomingMessage, request as httpRequest, type ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { Server as TlsServer } from "node:tls";
import { clientErrorHandler, helmetHeaders } from "@ndt/kit";
import { isPublicPath } from "../topology.js";

export interface ReadinessTarget {
  name: string;
  /** http://127.0.0.1:<port> */
  origin: string;
}

export interface TlsProxyOptions {
  cert: string;
  key: string;
  /** The gateway's origin, http://127.0.0.1:<port>. */
  upstream: string;
  /** Whose `/readyz` make up the stack's. */
  readiness: () => readonly ReadinessTarget[];
}

/** GET `<origin>/readyz` → true on 200 within the timeout. */
export function probeReady(origin: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(`${origin}/readyz`, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** Whether every target is ready, and each one's answer. */
export async function stackReadiness(
  targets: readonly ReadinessTarget[],
): Promise<{ ready: boolean; services: Record<string, "ready" | "not ready"> }> {
  const results = await Promise.all(targets.map(async (t) => [t.name, await probeReady(t.origin)] as const));
  return {
    ready: results.length > 0 && results.every(([, ok]) => ok),
    services: Object.fromEntries(results.map(([name, ok]) => [name, ok ? "ready" : "not ready"])),
  };
}

/** The request target with its path resolved (`/a/../b` → `/b`) and its query kept; undefined if it is no path. */
export function normalizedPath(target: string): string | undefined {
  if (!target.startsWith("/")) return undefined;
  try {
    const url = new URL(target, "http://localhost");
    return `${url.pathname}${url.search}`;
  } catch {
    return undefined;
  }
}

/** What the proxy's own answers carry, as the services' do: the same security headers (P12), JSON, never cached. */
const OWN_ANSWER_HEADERS = {
  ...helmetHeaders(),
  "content-type": "application/json",
  "cache-control": "no-store",
};

// hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-authorization",
]);

export class TlsProxy {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Open server-sent event streams: they never finish by themselves, so closing ends them first. */
  private readonly eventStreams = new Map<ServerResponse, ClientRequest>();
  private closing = false;
  /** Requests each TLS connection is carrying (an answer not yet finished): idle connections have none. */
  private readonly inFlight = new Map<Socket, number>();

  constructor(private readonly options: TlsProxyOptions) {
    this.server = createServer({ cert: options.cert, key: options.key }, (req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    });
    // requests Node's parser refuses (headers over its limit: 431; malformed: 400) get the envelope and the security
    // headers like every other answer, not Node's bare status line; the stack logs nothing of its own here
    this.server.on(
      "clientError",
      clientErrorHandler(() => ({ info: () => undefined }), helmetHeaders()),
    );
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    // the TLS sockets (requests' sockets), for ending connections gracefully: ending the TCP socket under TLS would not
    this.server.on("secureConnection", (socket: Socket) => {
      this.inFlight.set(socket, 0);
      socket.once("close", () => this.inFlight.delete(socket));
    });
  }

  /** Listens on `port` (all interfaces of localhost). Rejects with EADDRINUSE when the port is taken. */
  listen(port: number, host = "127.0.0.1"): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once("error", onError);
      this.server.listen(port, host, () => {
        this.server.off("error", onError);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // once closing, a connection ends (gracefully: what is written goes out first) with the last answer it carries
    const socket = req.socket;
    this.inFlight.set(socket, (this.inFlight.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const requests = this.inFlight.get(socket);
      if (requests === undefined) return; // the connection is gone
      this.inFlight.set(socket, requests - 1);
      if (this.closing && requests === 1) socket.end();
    });
    if (req.method === "GET" && (req.url === "/readyz" || req.url?.startsWith("/readyz?"))) {
      const readiness = await stackReadiness(this.options.readiness());
      res.writeHead(readiness.ready ? 200 : 503, { ...OWN_ANSWER_HEADERS, "x-request-id": randomUUID() });
      res.end(JSON.stringify({ status: readiness.ready ? "ready" : "not ready", services: readiness.services }));
      return;
    }
    // the path as a URL parser resolves it (dot segments, %2e): what is checked is what the gateway is sent, so
    // `/api/../metrics` is /metrics here as at the cloud's ingress
    const url = normalizedPath(req.url ?? "/");
    if (!url || !isPublicPath(url)) {
      res.writeHead(404, { ...OWN_ANSWER_HEADERS, "x-request-id": randomUUID() });
      res.end(JSON.stringify({ error: { code: "not_found", message: "Not a public path" } }));
      return;
    }
    if (!this.options.upstream) {
      res.writeHead(503, { ...OWN_ANSWER_HEADERS, "retry-after": "2", "x-request-id": randomUUID() });
      res.end(JSON.stringify({ error: { code: "starting", message: "the platform is starting; try again shortly" } }));
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    // the client's address alone, as the cloud's ingress sends it (use-forwarded-headers off): the gateway trusts this
    // hop, so a client's own x-forwarded-for kept in front would name any address to the per-IP limits
    headers["x-forwarded-for"] = req.socket.remoteAddress ?? "127.0.0.1";
    headers["x-forwarded-proto"] = "https";
    // a chunked body stays chunked, whatever the method: Node's client frames GET/HEAD/DELETE/OPTIONS bodies only
    // when told to, and unframed bytes would reach the gateway as a second request of the client's making
    // (smuggling past this edge's path check and x-forwarded-for). A content-length body keeps its content-length.
    if (req.headers["transfer-encoding"] !== undefined) headers["transfer-encoding"] = "chunked";
    if (req.headers.host) headers["x-forwarded-host"] = req.headers.host;

    const upstream = httpRequest(`${this.options.upstream}${url}`, { method: req.method, headers }, (answer) => {
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      // server-sent events: every chunk goes out as it comes
      res.flushHeaders();
      if (String(answer.headers["content-type"] ?? "").startsWith("text/event-stream")) {
        this.eventStreams.set(res, upstream);
        res.once("close", () => this.eventStreams.delete(res));
      }
      answer.pipe(res);
      answer.on("error", () => res.destroy());
    });
    upstream.on("error", () => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { ...OWN_ANSWER_HEADERS, "x-request-id": randomUUID() });
      res.end(JSON.stringify({ error: { code: "bad_gateway", message: "the gateway is not reachable" } }));
    });
    // the client went away (e.g. an event stream closed): stop the upstream request too
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }

  /**
   * Stops accepting, ends idle keep-alive connections and event streams, lets requests in flight (an upload) finish,
   * and destroys what is left after `graceMs`.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    // Not https.Server#close: it destroys "idle" connections first, and Node counts as idle one whose last answer is
    // ended but still in the socket's buffer — that answer was lost (seen: 202 headers, no body). The listener
    // closes here; idle connections are ended, which sends what is buffered before the FIN.
    const closed = new Promise<void>((resolve) => TlsServer.prototype.close.call(this.server, () => resolve()));
    for (const [socket, requests] of this.inFlight) if (requests === 0) socket.end();
    for (const [stream, upstream] of this.eventStreams) {
      upstream.destroy();
      stream.end();
    }
    const timer = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy();
    }, graceMs);
    await closed;
    clearTimeout(timer);
  }
}
