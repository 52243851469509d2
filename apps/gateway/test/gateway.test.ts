/**
 * The gateway against a real auth service and small real Fastify "files" and "reports" upstreams, over real sockets.
 */
import { type IncomingMessage, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { buildApp as buildAuth, loadAuthConfig } from "@ndt/auth";
import { MULTIPART_FRAMING_BYTES, type ServiceApp } from "@ndt/kit";
import { keepAliveClient, testDatabase, testRedis } from "@ndt/kit/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { decodeJwt, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp, loadGatewayConfig } from "../src/index.js";

const db = await testDatabase("gateway");
const kv = await testRedis("gateway");

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  payload: JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers },
});
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const origin = (app: FastifyInstance) => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

describe.skipIf(!db || !kv)("gateway", () => {
  let auth: ServiceApp;
  let files: FastifyInstance;
  let reports: FastifyInstance;
  const reportsSeen: { url: string; headers: Record<string, unknown> }[] = [];
  let gateway: ServiceApp;
  let strict: ServiceApp; // a second gateway with tiny rate limits
  let deadPort: number;
  const seen: { url: string; headers: Record<string, unknown> }[] = [];
  let jwksFetches = 0;
  let token: string;
  let refreshToken: string;

  const gatewayConfig = (overrides: Record<string, string> = {}) =>
    loadGatewayConfig({
      AUTH_URL: origin(auth),
      FILES_URL: origin(files),
      REPORTS_URL: origin(reports),
      JWKS_URL: `${origin(files)}/jwks-proxy`,
      JWKS_MIN_REFETCH_SEC: "30",
      REDIS_URL: kv!.url,
      REDIS_KEY_PREFIX: kv!.prefix,
      LOG_LEVEL: "silent",
      CORS_ORIGINS: "https://app.example.com",
      // long enough for an argon2 login on a busy 2-core machine, short enough for the 504 case (4 s upstream)
      UPSTREAM_TIMEOUT_MS: "1500",
      EVENTS_IDLE_TIMEOUT_MS: "5000",
      BODY_LIMIT_BYTES: "65536",
      UPLOAD_BODY_LIMIT_BYTES: "200000",
      ...overrides,
    });

  beforeAll(async () => {
    auth = await buildAuth({
      config: loadAuthConfig({
        DATABASE_URL: db!.url,
        REDIS_URL: kv!.url,
        REDIS_KEY_PREFIX: kv!.prefix,
        SIGNING_KEY_SECRET: "gateway-test-secret-0123456789abcdef",
        LOG_LEVEL: "silent",
        TRUST_PROXY: "127.0.0.1",
        // at nice 19 the hashing thread gets ~1.5% of a core beside another test file's work
        ARGON2_NICE: "0",
      }),
    });
    await auth.listen({ host: "127.0.0.1", port: 0 });

    // the files service does not exist yet: a small real upstream stands in for it
    files = Fastify({ routerOptions: { ignoreTrailingSlash: true } }); // as kit's services
    files.all("/api/v1/inspections", async (req) => {
      seen.push({ url: req.url, headers: req.headers });
      return {
        items: [],
        nextCursor: null,
        requestId: req.headers["x-request-id"],
        xff: req.headers["x-forwarded-for"],
      };
    });
    files.get("/api/v1/inspections/slow", async () => {
      await new Promise((r) => setTimeout(r, 4_000));
      return { late: true };
    });
    files.get("/api/v1/inspections/reset", async (req) => {
      req.raw.socket.destroy();
    });
    files.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
    files.post("/api/v1/inspections/:id/images", async (req) => ({ bytes: (req.body as Buffer).length }));
    // an event stream whose heartbeats come further apart than the ordinary upstream timeout (1.5 s here)
    files.get("/api/v1/inspections/:id/events", (_req, reply) => {
      reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      reply.raw.write(": connected\n\n"); // as files does: the headers go out at once
      let sent = 0;
      const beat = setInterval(() => {
        reply.raw.write(": ping\n\n");
        if (++sent === 2) {
          clearInterval(beat);
          reply.raw.end("data: done\n\n");
        }
      }, 2_000);
      reply.raw.on("close", () => clearInterval(beat));
    });
    files.get("/openapi.json", async () => ({
      openapi: "3.0.3",
      info: { title: "files", version: "0" },
      paths: { "/api/v1/inspections": { get: { summary: "list", responses: { 200: { description: "ok" } } } } },
    }));
    files.get("/jwks-proxy", async () => {
      jwksFetches++;
      return (await fetch(`${origin(auth)}/.well-known/jwks.json`)).json();
    });
    await files.listen({ host: "127.0.0.1", port: 0 });

    // a small real reports upstream: a PDF per inspection, 409 while not ready
    reports = Fastify();
    reports.get("/api/v1/inspections/:id/report", async (req, reply) => {
      reportsSeen.push({ url: req.url, headers: req.headers });
      const { id } = req.params as { id: string };
      if (id === "busy") return reply.code(409).send({ error: { code: "not_ready", message: "Images pending" } });
      return reply.type("application/pdf").send(Buffer.from(`%PDF-1.7 report of ${id}`));
    });
    reports.get("/openapi.json", async () => ({
      openapi: "3.0.3",
      info: { title: "reports", version: "0" },
      paths: {
        "/api/v1/inspections/{id}/report": { get: { summary: "PDF", responses: { 200: { description: "ok" } } } },
      },
    }));
    await reports.listen({ host: "127.0.0.1", port: 0 });

    const probe = Fastify();
    await probe.listen({ host: "127.0.0.1", port: 0 });
    deadPort = (probe.server.address() as AddressInfo).port;
    await probe.close(); // nothing listens there any more

    gateway = await buildApp({ config: gatewayConfig() });
    strict = await buildApp({
      config: gatewayConfig({
        RATE_LIMIT_PER_IP: "5",
        RATE_LIMIT_PER_USER: "3",
        REDIS_KEY_PREFIX: `${kv!.prefix}strict:`,
      }),
    });

    const reg = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/register",
      ...json({ email: "gw@example.com", password: "gateway password", organization: "GW" }),
    });
    expect(reg.statusCode).toBe(201);
    const login = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      ...json({ email: "gw@example.com", password: "gateway password" }),
    });
    ({ accessToken: token, refreshToken } = login.json());
  });

  afterAll(async () => {
    await gateway?.close();
    await strict?.close();
    await files?.close();
    await reports?.close();
    await auth?.close();
    await kv?.cleanup();
    await db?.drop();
  });

  it("routes auth endpoints and answers me for a verified token", async () => {
    const res = await gateway.inject({ method: "GET", url: "/api/v1/auth/me", headers: bearer(token) });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ email: "gw@example.com", role: "admin", organization: { name: "GW" } });
    const jwks = await gateway.inject({ method: "GET", url: "/.well-known/jwks.json" });
    expect(jwks.statusCode).toBe(200);
    expect(jwks.json().keys.length).toBeGreaterThan(0);
  });

  it("routes inspections to files, propagating the request id and the client address", async () => {
    const res = await gateway.inject({
      method: "GET",
      url: "/api/v1/inspections?limit=5",
      headers: { ...bearer(token), "x-request-id": "gw-trace-1" },
      remoteAddress: "203.0.113.7",
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-request-id"]).toBe("gw-trace-1");
    expect(res.json()).toMatchObject({ requestId: "gw-trace-1", xff: "203.0.113.7" });
    expect(seen.at(-1)!.url).toBe("/api/v1/inspections?limit=5");
  });

  it("answers HEAD on a JSON GET route with the length the GET answer has, not 0", async () => {
    const headers = { ...bearer(token), "x-request-id": "gw-head-1" };
    const get = await gateway.inject({ method: "GET", url: "/api/v1/inspections", headers });
    const head = await gateway.inject({ method: "HEAD", url: "/api/v1/inspections", headers });
    expect(get.statusCode).toBe(200);
    expect(get.headers["content-length"]).toBe(String(get.rawPayload.length));
    expect([head.statusCode, head.headers["content-length"]]).toEqual([200, get.headers["content-length"]]);
    expect(head.headers["content-type"]).toBe(get.headers["content-type"]);
    expect(head.rawPayload.length).toBe(0);
  });

  it("answers a client's `Expect: 100-continue` itself and does not pass it upstream (curl sends it on large bodies)", async () => {
    const expectContinue = { expect: "100-continue" };
    const me = await gateway.inject({
      method: "GET",
      url: "/api/v1/auth/me",
      headers: { ...bearer(token), ...expectContinue },
    });
    expect(me.statusCode).toBe(200);
    const upload = await gateway.inject({
      method: "POST",
      url: "/api/v1/inspections/i1/images?filename=a.png",
      headers: { ...bearer(token), "content-type": "image/png", ...expectContinue },
      payload: Buffer.alloc(150_000, 2),
    });
    expect(upload.statusCode).toBe(200);
    expect(upload.json()).toEqual({ bytes: 150_000 });
  });

  it("answers 401 itself, without reaching the upstream, for a missing, forged or expired token", async () => {
    const before = seen.length;
    const claims = decodeJwt(token);
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString("base64url");
    const none = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`;
    const [h, , s] = token.split(".");
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, role: "viewer" })).toString("base64url")}.${s}`;
    for (const headers of [{}, bearer(none), bearer(tampered), bearer("garbage")]) {
      const res = await gateway.inject({ method: "GET", url: "/api/v1/inspections", headers });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("unauthorized");
      expect(res.headers["x-request-id"]).toBeDefined();
    }
    expect(seen.length).toBe(before);
  });

  it("refetches the JWKS on an unknown kid, at most once per interval", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const claims = decodeJwt(token);
    const before = jwksFetches;
    for (let i = 0; i < 10; i++) {
      const forged = await new SignJWT(claims)
        .setProtectedHeader({ alg: "ES256", kid: `unknown-${i}`, typ: "at+jwt" })
        .sign(privateKey);
      expect(
        (await gateway.inject({ method: "GET", url: "/api/v1/inspections", headers: bearer(forged) })).statusCode,
      ).toBe(401);
    }
    expect(jwksFetches - before).toBeLessThanOrEqual(1);
  });

  it("checks revocation: after logout the token is refused at the gateway", async () => {
    const login = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      ...json({ email: "gw@example.com", password: "gateway password" }),
    });
    const session = login.json();
    expect(
      (await gateway.inject({ method: "GET", url: "/api/v1/inspections", headers: bearer(session.accessToken) }))
        .statusCode,
    ).toBe(200);
    const out = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/logout",
      headers: bearer(session.accessToken),
    });
    expect(out.statusCode).toBe(204);
    const before = seen.length;
    const res = await gateway.inject({
      method: "GET",
      url: "/api/v1/inspections",
      headers: bearer(session.accessToken),
    });
    expect(res.statusCode).toBe(401);
    expect(seen.length).toBe(before);
  });

  it("passes the upstream's contract answers through: unknown fields and malformed JSON → 400", async () => {
    const unknown = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      ...json({ email: "gw@example.com", password: "gateway password", isAdmin: true }),
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.code).toBe("validation_failed");
    const malformed = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      payload: `{"refreshToken": "${refreshToken}"`,
      headers: { "content-type": "application/json" },
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.code).toBe("malformed_json");
  });

  it("aborts the upstream request when its client goes away mid-upload, instead of leaving the service waiting", async () => {
    if (!gateway.server.listening) await gateway.listen({ host: "127.0.0.1", port: 0 });
    const port = (gateway.server.address() as AddressInfo).port;
    let arrived: () => void = () => undefined;
    const upstreamReached = new Promise<void>((resolve) => (arrived = resolve));
    const upstreamClosed = new Promise<number>((resolve) => {
      const onRequest = (req: IncomingMessage) => {
        if (req.headers["x-test-marker"] !== "abandoned") return;
        files.server.off("request", onRequest);
        arrived();
        req.once("close", () => resolve(Date.now()));
      };
      files.server.on("request", onRequest);
    });
    const headers = { ...bearer(token), "content-type": "image/png", "x-test-marker": "abandoned" };
    const upload = httpRequest({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/api/v1/inspections/i1/images",
      headers: { ...headers, "content-length": "150000" },
      agent: false,
    });
    upload.on("error", () => undefined);
    upload.write(Buffer.alloc(20_000, 1));
    await upstreamReached; // the request is upstream, its body unfinished
    const gone = Date.now();
    upload.destroy();
    const closedAt = await Promise.race([upstreamClosed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
    expect(closedAt, "the upstream request was still open 5 s after its client left").toBeGreaterThan(0);
    expect(closedAt - gone).toBeLessThan(1_000);
  });

  it("enforces body limits: declared and streamed (chunked) bodies over the limit → 413", async () => {
    const big = await gateway.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      ...json({ email: "gw@example.com", password: "x".repeat(100_000) }),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({ error: { code: "payload_too_large", message: expect.any(String) } });

    if (!gateway.server.listening) await gateway.listen({ host: "127.0.0.1", port: 0 });
    const port = (gateway.server.address() as AddressInfo).port;
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/api/v1/inspections/i1/images",
          headers: { ...bearer(token), "content-type": "image/png", "transfer-encoding": "chunked" },
          // its own socket, closed with the answer: the unfinished upload must not keep the gateway's close waiting
          agent: false,
        },
        (res) => {
          let body = "";
          res.on("data", (c) => {
            body += c;
          });
          res.on("end", () => {
            resolve({ status: res.statusCode ?? 0, body });
            req.destroy();
          });
        },
      );
      req.on("error", reject);
      const chunk = Buffer.alloc(50_000, 1);
      let sent = 0;
      const pump = () => {
        while (sent < 10) {
          sent++;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    // a declared body over the limit is read and discarded after the 413, not cut off with a reset: a client (or
    // the proxy in front) still sending it gets the answer, and the connection serves the next request
    const { send, close } = keepAliveClient(port);
    expect(await send("/api/v1/auth/login", Buffer.alloc(500_000, 0x61))).toMatchObject({ status: 413 });
    expect(await send("/.well-known/jwks.json")).toMatchObject({ status: 200, reused: true });
    // the same for a body answered before it is read: an upload without a token (401 at the gateway)
    expect(await send("/api/v1/inspections/i1/images", Buffer.alloc(150_000, 2))).toMatchObject({ status: 401 });
    expect(await send("/.well-known/jwks.json")).toMatchObject({ status: 200, reused: true });
    close();
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error.code).toBe("payload_too_large");
    // within the upload limit it streams through (the route's path with a trailing slash is the same route)
    for (const path of ["/api/v1/inspections/i1/images", "/api/v1/inspections/i1/images/"]) {
      const ok = await gateway.inject({
        method: "POST",
        url: `${path}?filename=a.png`,
        headers: { ...bearer(token), "content-type": "image/png" },
        payload: Buffer.alloc(150_000, 2),
      });
      expect([path, ok.statusCode, ok.json()]).toEqual([path, 200, { bytes: 150_000 }]);
    }
  });

  it("holds an upload to its limit exactly, a multipart body to the limit plus a bounded framing", async () => {
    const LIMIT = 200_000; // UPLOAD_BODY_LIMIT_BYTES
    const boundary = "----ndt-gateway-test";
    /** A multipart body of one file of `size` bytes, padded by an epilogue of `epilogue` bytes (RFC 2046 allows it). */
    const form = (size: number, epilogue = 0) =>
      Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n` +
            "Content-Type: image/png\r\n\r\n",
        ),
        Buffer.alloc(size, 7),
        Buffer.from(`\r\n--${boundary}--\r\n`),
        Buffer.alloc(epilogue, 0x2e),
      ]);
    const framing = form(0).length;
    const send = (body: Buffer, type: string, streamed: boolean) =>
      gateway.inject({
        method: "POST",
        url: "/api/v1/inspections/i1/images",
        headers: { ...bearer(token), "content-type": type },
        // streamed: no content-length, the gateway counts the bytes as they pass
        payload: streamed ? Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]) : body,
      });
    const multipart = `multipart/form-data; boundary=${boundary}`;
    for (const streamed of [false, true]) {
      // a file of exactly the limit reaches files (which holds the file itself to its limit), whole
      const atLimit = form(LIMIT);
      const ok = await send(atLimit, multipart, streamed);
      expect([streamed, ok.statusCode, ok.json()]).toEqual([streamed, 200, { bytes: atLimit.length }]);
      // the framing allowance is bounded: a body past limit + MULTIPART_FRAMING_BYTES is refused at the gateway
      const fullest = form(LIMIT, MULTIPART_FRAMING_BYTES - framing);
      expect(fullest.length).toBe(LIMIT + MULTIPART_FRAMING_BYTES);
      const full = await send(fullest, multipart, streamed);
      expect([streamed, full.statusCode]).toEqual([streamed, 200]);
      const over = await send(form(LIMIT, MULTIPART_FRAMING_BYTES - framing + 1), multipart, streamed);
      expect([streamed, over.statusCode, over.json().error.code]).toEqual([streamed, 413, "payload_too_large"]);
      // a raw body has no framing: the limit is exact
      const raw = await send(Buffer.alloc(LIMIT, 7), "image/png", streamed);
      expect([streamed, raw.statusCode, raw.json()]).toEqual([streamed, 200, { bytes: LIMIT }]);
      const rawOver = await send(Buffer.alloc(LIMIT + 1, 7), "image/png", streamed);
      expect([streamed, rawOver.statusCode]).toEqual([streamed, 413]);
    }
  });

  it("keeps an event stream open through silences longer than the response timeout, up to its own idle bound", async () => {
    if (!gateway.server.listening) await gateway.listen({ host: "127.0.0.1", port: 0 });
    const port = (gateway.server.address() as AddressInfo).port;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/inspections/i1/events`, { headers: bearer(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    // two 2 s silences (each longer than UPSTREAM_TIMEOUT_MS = 1.5 s), then the stream's own end
    expect(await res.text()).toBe(": connected\n\n: ping\n\n: ping\n\ndata: done\n\n");
  });

  it("a down, slow or broken upstream → 503 / 504 / 502 with the envelope, never a hang", async () => {
    const down = await buildApp({ config: gatewayConfig({ FILES_URL: `http://127.0.0.1:${deadPort}` }) });
    try {
      const t0 = Date.now();
      const r503 = await down.inject({ method: "GET", url: "/api/v1/inspections", headers: bearer(token) });
      expect(r503.statusCode).toBe(503);
      expect(r503.json()).toEqual({ error: { code: "upstream_unavailable", message: expect.any(String) } });
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      await down.close();
    }
    const t1 = Date.now();
    const r504 = await gateway.inject({ method: "GET", url: "/api/v1/inspections/slow", headers: bearer(token) });
    expect(r504.statusCode).toBe(504);
    expect(r504.json().error.code).toBe("upstream_timeout");
    expect(Date.now() - t1).toBeLessThan(3_000);
    const r502 = await gateway.inject({ method: "GET", url: "/api/v1/inspections/reset", headers: bearer(token) });
    expect(r502.statusCode).toBe(502);
    expect(r502.json().error.code).toBe("bad_gateway");
    expect(r502.body).not.toMatch(/ECONN|socket|Error:/);
  });

  it("rate limits per IP and per user, in Redis, with one envelope", async () => {
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) {
      codes.push(
        (await strict.inject({ method: "GET", url: "/.well-known/jwks.json", remoteAddress: "198.51.100.1" }))
          .statusCode,
      );
    }
    expect(codes).toEqual([200, 200, 200, 200, 200, 429]);
    const limited = await strict.inject({
      method: "GET",
      url: "/.well-known/jwks.json",
      remoteAddress: "198.51.100.1",
    });
    expect(limited.json()).toEqual({ error: { code: "too_many_requests", message: "Too many requests" } });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    // per user: from different addresses, the 4th call of the same user is refused
    const user: number[] = [];
    for (let i = 0; i < 4; i++) {
      user.push(
        (
          await strict.inject({
            method: "GET",
            url: "/api/v1/inspections",
            headers: bearer(token),
            remoteAddress: `198.51.100.${10 + i}`,
          })
        ).statusCode,
      );
    }
    expect(user).toEqual([200, 200, 200, 429]);
    // forged tokens count against the address too
    const forged: number[] = [];
    for (let i = 0; i < 6; i++) {
      forged.push(
        (
          await strict.inject({
            method: "GET",
            url: "/api/v1/inspections",
            headers: bearer(`x${i}.y.z`),
            remoteAddress: "198.51.100.99",
          })
        ).statusCode,
      );
    }
    expect(forged).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it("routes an inspection's report to reports (GET only), everything else under inspections to files", async () => {
    const filesBefore = seen.length;
    const res = await gateway.inject({
      method: "GET",
      url: "/api/v1/inspections/insp-7/report?download=1",
      headers: { ...bearer(token), "x-request-id": "gw-report-1" },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/pdf");
    expect(res.headers["x-request-id"]).toBe("gw-report-1");
    expect(res.body).toBe("%PDF-1.7 report of insp-7");
    expect(reportsSeen.at(-1)!.url).toBe("/api/v1/inspections/insp-7/report?download=1");
    expect(reportsSeen.at(-1)!.headers["x-request-id"]).toBe("gw-report-1");
    expect(reportsSeen.at(-1)!.headers.authorization).toBe(`Bearer ${token}`);
    expect(seen.length).toBe(filesBefore);
    // the upstream's own answers pass through
    const busy = await gateway.inject({
      method: "GET",
      url: "/api/v1/inspections/busy/report",
      headers: bearer(token),
    });
    expect(busy.statusCode).toBe(409);
    expect(busy.json().error.code).toBe("not_ready");
    // a report needs a valid token like everything else, checked before reports is reached
    const reportsBefore = reportsSeen.length;
    const anonymous = await gateway.inject({ method: "GET", url: "/api/v1/inspections/insp-7/report" });
    expect(anonymous.statusCode).toBe(401);
    expect(reportsSeen.length).toBe(reportsBefore);
    // other methods and deeper paths stay with files
    const post = await gateway.inject({
      method: "POST",
      url: "/api/v1/inspections/insp-7/report",
      headers: bearer(token),
    });
    expect(post.statusCode).toBe(404);
    expect(reportsSeen.length).toBe(reportsBefore);
    expect(
      (await gateway.inject({ method: "GET", url: "/api/v1/inspections", headers: bearer(token) })).statusCode,
    ).toBe(200);
    expect(seen.length).toBe(filesBefore + 1);
  });

  it("a down reports upstream → 503 with the envelope; the OpenAPI document is still served without it", async () => {
    const down = await buildApp({ config: gatewayConfig({ REPORTS_URL: `http://127.0.0.1:${deadPort}` }) });
    try {
      const t0 = Date.now();
      const res = await down.inject({
        method: "GET",
        url: "/api/v1/inspections/insp-7/report",
        headers: bearer(token),
      });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: { code: "upstream_unavailable", message: expect.any(String) } });
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(
        (await down.inject({ method: "GET", url: "/api/v1/inspections", headers: bearer(token) })).statusCode,
      ).toBe(200);
      const doc = await down.inject({ method: "GET", url: "/api/v1/openapi.json" });
      expect(doc.statusCode).toBe(200);
      expect(Object.keys(doc.json().paths)).toContain("/api/v1/auth/login");
      expect(Object.keys(doc.json().paths)).not.toContain("/api/v1/inspections/{id}/report");
    } finally {
      await down.close();
    }
  });

  it("serves one OpenAPI document merged from the services, and its UI", async () => {
    const doc = (await gateway.inject({ method: "GET", url: "/api/v1/openapi.json" })).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/org/members",
        "/api/v1/inspections",
        "/api/v1/inspections/{id}/report",
      ]),
    );
    const ui = await gateway.inject({ method: "GET", url: "/docs/" });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers["content-type"]).toContain("text/html");
    const uiDoc = (await gateway.inject({ method: "GET", url: "/docs/json" })).json();
    expect(Object.keys(uiDoc.paths)).toContain("/api/v1/auth/register");
  });

  it("adds security headers, the CORS allow-list and a request id to every answer", async () => {
    const res = await gateway.inject({
      method: "GET",
      url: "/.well-known/jwks.json",
      headers: { origin: "https://app.example.com" },
    });
    expect(res.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["x-request-id"]).toBeDefined();
    const other = await gateway.inject({
      method: "GET",
      url: "/.well-known/jwks.json",
      headers: { origin: "https://evil.example.com" },
    });
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    const missing = await gateway.inject({ method: "GET", url: "/api/v1/nothing" });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe("not_found");
    expect((await gateway.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
  });
});
