/**
 * The local TLS proxy as the edge: only the public paths reach the gateway, judged on the path as it resolves
 * (dot segments, %2e), and what reaches the gateway is that resolved path.
 */
import { createServer, type Server } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localCertificate } from "./certificate.js";
import { normalizedPath, TlsProxy } from "./proxy.js";

describe("the local TLS proxy", () => {
  const seen: string[] = [];
  let gateway: Server;
  let proxy: TlsProxy;
  let port: number;
  let ca: string;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ndt-proxy-"));
    const certificate = await localCertificate(dir);
    ca = certificate.cert;
    gateway = createServer((req, res) => {
      seen.push(req.url ?? "");
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
    const origin = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    proxy = new TlsProxy({ cert: certificate.cert, key: certificate.key, upstream: origin, readiness: () => [] });
    port = await proxy.listen(0);
  });
  afterAll(async () => {
    await proxy?.close(100);
    await new Promise((resolve) => gateway?.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  // the path goes out exactly as written (no client-side resolution, unlike fetch)
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: "localhost", port, path, ca, method: "GET" }, (res) => {
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

  it("forwards a public path as it resolves, query kept", async () => {
    expect(await get("/api/v1/../v1/inspections?limit=5")).toBe(200);
    expect(await get("/.well-known/jwks.json")).toBe(200);
    expect(seen).toEqual(["/api/v1/inspections?limit=5", "/.well-known/jwks.json"]);
  });

  it("resolves request targets as a URL parser does", () => {
    expect(normalizedPath("/api/%2E%2E/healthz")).toBe("/healthz");
    expect(normalizedPath("/api/v1/x%2fy")).toBe("/api/v1/x%2fy");
    expect(normalizedPath("http://elsewhere/api")).toBeUndefined();
  });
});
