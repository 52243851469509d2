/**
 * The local TLS proxy as the edge: only the public paths reach the gateway, judged on the path as it resolves
 * (dot segments, %2e), and what reaches the gateway is that resolved path.
 */
import { createServer, type RequestListener, type ServerResponse, STATUS_CODES } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localCertificate } from "./certificate.js";
import { normalizedPath, TlsProxy } from "./proxy.js";

/** The proxy in front of a plain HTTP stand-in for the gateway; `stop` closes both and removes the certificate. */
async function proxyInFront(gatewayAnswers: RequestListener) {
  const dir = await mkdtemp(join(tmpdir(), "ndt-proxy-"));
  const certificate = await localCertificate(dir);
  const gateway = createServer(gatewayAnswers);
  await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
  const proxy = new TlsProxy({
    cert: certificate.cert,
    key: certificate.key,
    upstream: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`,
    readiness: () => [],
  });
  const port = await proxy.listen(0);
  return {
    proxy,
    port,
    ca: certificate.cert,
    async stop() {
      await proxy.close(100);
      gateway.closeAllConnections();
      await new Promise((resolve) => gateway.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("the local TLS proxy", () => {
  const seen: string[] = [];
  const forwardedFor: (string | string[] | undefined)[] = [];
  let edge: Awaited<ReturnType<typeof proxyInFront>>;
  let port: number;
  let ca: string;

  beforeAll(async () => {
    edge = await proxyInFront((req, res) => {
      seen.push(req.url ?? "");
      forwardedFor.push(req.headers["x-forwarded-for"]);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    ({ port, ca } = edge);
  });
  afterAll(() => edge?.stop());

  // the path goes out exactly as written (no client-side resolution, unlike fetch)
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: "localhost", port, path, ca, method: "GET", headers }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end();
    });

  it("refuses every non-public path, however it is spelled, before the gateway sees it", async () => {
    for (const path of [
      "/metrics",
      "/healthz",
      "/api/../metrics",
      "/api/%2e%2e/metrics",
      "/docs/../healthz",
      "/apix",
    ]) {
      expect(await get(path), path).toBe(404);
    }
    expect(seen).toEqual([]);
  });

  it("sends the services' security headers on its own answers too (P12)", async () => {
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      httpsRequest({ host: "localhost", port, path: "/metrics", ca }, (res) => {
        res.resume();
        resolve(res.headers);
      })
        .on("error", reject)
        .end();
    });
    expect(headers).toMatchObject({
      "strict-transport-security": expect.stringContaining("max-age="),
      "content-security-policy": expect.stringContaining("default-src"),
      "x-frame-options": "SAMEORIGIN",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
    });
  });

  it("forwards a public path as it resolves, query kept", async () => {
    expect(await get("/api/v1/../v1/inspections?limit=5")).toBe(200);
    expect(await get("/.well-known/jwks.json")).toBe(200);
    expect(seen).toEqual(["/api/v1/inspections?limit=5", "/.well-known/jwks.json"]);
  });

  it("tells the gateway the client's address alone: a client's own x-forwarded-for is dropped", async () => {
    // the gateway trusts this proxy's hop; were a client's header kept in front of it, any client could name its
    // own address to every per-IP limit (the black-box check registered past REGISTER_MAX_PER_IP so)
    forwardedFor.length = 0;
    expect(await get("/api/v1/inspections", { "x-forwarded-for": "5.6.7.8" })).toBe(200);
    expect(await get("/api/v1/inspections", { "x-forwarded-for": "5.6.7.8, 127.0.0.1" })).toBe(200);
    expect(await get("/api/v1/inspections")).toBe(200);
    expect(forwardedFor).toEqual(["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
  });

  it("resolves request targets as a URL parser does", () => {
    expect(normalizedPath("/api/%2E%2E/healthz")).toBe("/healthz");
    expect(normalizedPath("/api/v1/x%2fy")).toBe("/api/v1/x%2fy");
    expect(normalizedPath("http://elsewhere/api")).toBeUndefined();
  });
});

describe("request bodies through the local TLS proxy", () => {
  // A GET (HEAD, DELETE, OPTIONS) body sent chunked: the proxy drops transfer-encoding as hop-by-hop, and Node's
  // client frames those methods' bodies only when told to, so unframed bytes reached the gateway as a SECOND request
  // (the black-box check reached /metrics and a forged x-forwarded-for so). The body must arrive as this request's.
  it("forwards a chunked body on any method as that request's body, never as another request", async () => {
    const received: { method: string; url: string; body: string; forwardedFor: unknown }[] = [];
    const { port, ca, stop } = await proxyInFront((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        received.push({
          method: req.method ?? "",
          url: req.url ?? "",
          body,
          forwardedFor: req.headers["x-forwarded-for"],
        });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    const smuggled = "GET /metrics?smuggled=1 HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    try {
      for (const method of ["GET", "HEAD", "DELETE", "OPTIONS", "POST"]) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpsRequest(
            {
              host: "localhost",
              port,
              ca,
              method,
              path: "/.well-known/jwks.json",
              headers: { "transfer-encoding": "chunked" },
            },
            (res) => {
              res.resume();
              res.on("end", () => resolve(res.statusCode ?? 0));
            },
          );
          req.on("error", reject);
          req.end(smuggled);
        });
        expect(status, method).toBe(200);
      }
      // the gateway's connection may carry a further request only if it is one the proxy sent
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(received.map((r) => `${r.method} ${r.url}`)).toEqual(
        ["GET", "HEAD", "DELETE", "OPTIONS", "POST"].map((m) => `${m} /.well-known/jwks.json`),
      );
      for (const r of received) {
        expect(r.body, r.method).toBe(smuggled);
        expect(r.forwardedFor, r.method).toBe("127.0.0.1");
      }
    } finally {
      await stop();
    }
  });
});

describe("requests the local TLS proxy's HTTP parser refuses", () => {
  it("answers them with the envelope, the security headers and a request id, then closes", async () => {
    const { port, ca, stop } = await proxyInFront((_req, res) => res.writeHead(200).end());
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: "localhost", port, ca, servername: "localhost" }, () => socket.end(request));
        let text = "";
        socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
      });
    try {
      const cases: [string, number, string][] = [
        [`GET /api/v1/x HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431, "headers_too_large"],
        ["GET /api/v1/x HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n", 400, "bad_request"],
      ];
      for (const [request, status, code] of cases) {
        const answer = await raw(request);
        const [head = "", body = ""] = answer.split("\r\n\r\n");
        expect(head.split("\r\n")[0], code).toBe(`HTTP/1.1 ${status} ${STATUS_CODES[status]}`);
        expect(JSON.parse(body).error.code, code).toBe(code);
        expect(head, code).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/);
        expect(head, code).toMatch(/\r\nstrict-transport-security: max-age=/);
        expect(head, code).toMatch(/\r\nconnection: close(\r\n|$)/);
      }
    } finally {
      await stop();
    }
  });
});

describe("closing the local TLS proxy (Ctrl-C)", () => {
  it("lets an upload in flight finish and ends event streams at once", async () => {
    let streamOpen: () => void = () => undefined;
    let uploadSending: () => void = () => undefined;
    const bothInFlight = Promise.all([
      new Promise<void>((resolve) => (streamOpen = resolve)),
      new Promise<void>((resolve) => (uploadSending = resolve)),
    ]);
    const { proxy, port, ca, stop } = await proxyInFront((req, res) => {
      if (req.url?.endsWith("/events")) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(": connected\n\n");
        streamOpen();
        return; // never ends by itself
      }
      let bytes = 0;
      req.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        uploadSending();
      });
      req.on("end", () => res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ bytes })));
    });
    try {
      const stream = new Promise<string>((resolve, reject) => {
        httpsRequest({ host: "localhost", port, ca, path: "/api/v1/inspections/i/events" }, (res) => {
          res.resume();
          res.on("end", () => resolve("ended"));
          res.on("error", reject);
        })
          .on("error", reject)
          .end();
      });
      // 10 chunks, 150 ms apart: the upload is still sending when the proxy is told to close
      const upload = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: "localhost", port, ca, method: "POST", path: "/api/v1/inspections/i/images" },
          (res) => {
            let body = "";
            res.on("data", (chunk: Buffer) => (body += chunk.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on("error", reject);
        let sent = 0;
        const tick = setInterval(() => {
          req.write(Buffer.alloc(1000, 1));
          if (++sent === 10) {
            clearInterval(tick);
            req.end();
          }
        }, 150);
      });
      // the close comes once both have reached the upstream (the upload then has ~1.3 s of chunks to go)
      await bothInFlight;
      const started = Date.now();
      const closing = proxy.close(5_000);
      expect(await stream).toBe("ended");
      expect(await upload).toEqual({ status: 202, body: JSON.stringify({ bytes: 10_000 }) });
      await closing;
      // done when the upload was, not at the 5 s bound an open event stream would hold it to
      expect(Date.now() - started).toBeLessThan(4_000);
    } finally {
      await stop();
    }
  });
});

describe("closing the local TLS proxy just as an answer ends", () => {
  it("delivers that answer whole: its connection is ended after it, not destroyed with it still buffered", async () => {
    const body = JSON.stringify({ id: "image", status: "queued" });
    const { proxy, port, ca, stop } = await proxyInFront((_req, res) => {
      res.writeHead(202, { "content-type": "application/json" }).end(body);
    });
    // Ctrl-C at the worst moment, as seen under load: the proxy has ended its answer, whose bytes still wait in the
    // socket's buffer (held here by cork until the close has begun)
    proxy.server.on("request", (_req, res: ServerResponse) => {
      const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
      res.end = ((...args: unknown[]) => {
        res.socket?.cork();
        const ended = end(...args);
        void proxy.close(5_000);
        process.nextTick(() => res.socket?.uncork());
        return ended;
      }) as typeof res.end;
    });
    try {
      const received = await new Promise<string>((resolve) => {
        httpsRequest({ host: "localhost", port, ca, method: "POST", path: "/api/v1/x" }, (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString()));
          res.on("end", () => resolve(`${res.statusCode} ${text}`));
          res.on("error", (err) => resolve(`${res.statusCode} ${err.message} after "${text}"`));
        })
          .on("error", (err) => resolve(err.message))
          .end("{}");
      });
      expect(received).toBe(`202 ${body}`);
    } finally {
      await stop();
    }
  });
});
