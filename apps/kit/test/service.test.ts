import { type AddressInfo, connect } from "node:net";
import type { Readable } from "node:stream";
import { keepAliveClient } from "../src/testing/index.js";
import { Type } from "@sinclair/typebox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createService,
  errorResponses,
  HttpConfig,
  HttpError,
  httpServiceOptions,
  loadConfig,
  NonBlankText,
  type ServiceApp,
  StrictObject,
} from "../src/index.js";

describe("createService", () => {
  let app: ServiceApp;
  let dependencyUp = true;

  beforeAll(async () => {
    app = await createService({
      name: "demo",
      logLevel: "silent",
      corsOrigins: "https://a.example.com, https://b.example.com",
      bodyLimit: 1024,
      openapi: { description: "demo" },
    });
    app.health.addCheck("dep", async () => {
      if (!dependencyUp) throw new Error("down");
    });
    app.post(
      "/things",
      {
        schema: {
          body: StrictObject({
            name: Type.String({ maxLength: 20 }),
            size: Type.Optional(Type.Integer()),
            kind: Type.Optional(Type.Union([Type.Literal("weld"), Type.Literal("plate")])),
            label: Type.Optional(NonBlankText(20)),
          }),
          response: { 201: Type.Object({ id: Type.String(), name: Type.String() }), ...errorResponses(400) },
        },
      },
      async (request, reply) =>
        // the extra field must not leak: the response schema filters it
        reply.code(201).send({ id: "t1", name: request.body.name, secret: "s3cr3t" } as { id: string; name: string }),
    );
    app.get(
      "/things/:id",
      {
        schema: {
          params: Type.Object({ id: Type.String({ maxLength: 200 }) }),
          querystring: Type.Object({
            limit: Type.Optional(Type.Integer({ minimum: 1 })),
            q: Type.Optional(Type.String()),
          }),
        },
      },
      async (request) => ({ id: request.params.id, limit: request.query.limit ?? null }),
    );
    app.get("/teapot", async () => {
      throw new HttpError(418, "teapot", "I am a teapot", { "x-extra": "1" });
    });
    app.get("/boom", async () => {
      throw new Error('relation "users" does not exist at SELECT * FROM users');
    });
    await app.ready();
  });
  afterAll(() => app?.close());

  it("validates bodies, rejects unknown fields and filters responses by schema", async () => {
    const ok = await app.inject({ method: "POST", url: "/things", payload: { name: "a" } });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toEqual({ id: "t1", name: "a" });
    const extra = await app.inject({ method: "POST", url: "/things", payload: { name: "a", admin: true } });
    expect(extra.statusCode).toBe(400);
    expect(extra.json()).toEqual({ error: { code: "validation_failed", message: "body.admin is not a known field" } });
    const kind = await app.inject({ method: "POST", url: "/things", payload: { name: "a", kind: "pipe" } });
    expect(kind.json().error.message).toBe('body.kind must be one of "weld", "plate"');
    const blank = await app.inject({ method: "POST", url: "/things", payload: { name: "a", label: " \t" } });
    expect(blank.json().error.message).toBe("body.label must not be blank");
    // invisible characters are blank too: a zero-width space, a BOM, a direction mark
    for (const label of ["\u200b", " \ufeff ", "\u200e\u200b", "\u180e", "\u3164"]) {
      const invisible = await app.inject({ method: "POST", url: "/things", payload: { name: "a", label } });
      expect(invisible.json().error.message, JSON.stringify(label)).toBe("body.label must not be blank");
    }
    expect(
      (await app.inject({ method: "POST", url: "/things", payload: { name: "a", label: "\u200bé" } })).statusCode,
    ).toBe(201);
    const missing = await app.inject({ method: "POST", url: "/things", payload: {} });
    expect(missing.json().error.message).toBe("body.name is required");
    const wrong = await app.inject({ method: "POST", url: "/things", payload: { name: "x".repeat(21) } });
    expect(wrong.statusCode).toBe(400);
  });

  it("takes a JSON body's types as sent, and converts only the query string and params, which are text", async () => {
    for (const payload of [{ name: 123 }, { name: true }, { name: ["a"] }, { name: "a", size: "5" }]) {
      const res = await app.inject({ method: "POST", url: "/things", payload });
      expect([res.statusCode, res.json().error.code], JSON.stringify(payload)).toEqual([400, "validation_failed"]);
    }
    expect((await app.inject({ method: "POST", url: "/things", payload: { name: "a", size: 5 } })).statusCode).toBe(
      201,
    );
    const query = await app.inject({ method: "GET", url: "/things/t1?limit=20" });
    expect(query.json()).toEqual({ id: "t1", limit: 20 });
  });

  it("refuses a NUL character in any string of the body, query string or params, naming where, before the handler", async () => {
    const cases = [
      { url: "/things", payload: { name: "a\u0000b" }, where: "body.name" },
      { url: "/things", payload: { name: "a", ["k\u0000"]: 1 }, where: "body (a key)" },
      { url: "/things/t1?q=a%00b", where: "querystring.q" },
      { url: "/things/a%00b", where: "params.id" },
    ];
    for (const { url, payload, where } of cases) {
      const res = await app.inject({ method: payload ? "POST" : "GET", url, ...(payload ? { payload } : {}) });
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toEqual({
        error: { code: "validation_failed", message: `${where} must not contain the NUL character` },
      });
    }
  });

  it("answers a path parameter over Fastify's length bound with the envelope and the request id", async () => {
    const res = await app.inject({ method: "GET", url: `/things/${"a".repeat(150)}` });
    expect(res.statusCode).toBe(414);
    expect(res.json()).toEqual({ error: { code: "uri_too_long", message: "The request URL was rejected" } });
    expect(res.headers["x-request-id"]).toEqual(expect.any(String));
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("reads and discards a declared oversized body after its 413 instead of closing on a client still sending it", async () => {
    // closing while the body still arrives makes the client's kernel reset the connection, which can destroy the
    // 413 before it is read (the local TLS proxy answered 502): the connection stays open, so the next request on
    // it is served. An undeclared (chunked) body over the limit still closes.
    if (!app.server.listening) await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const { send, close } = keepAliveClient(port);
    try {
      const big = await send("/things", Buffer.alloc(1_000_000, 0x61));
      expect(big.status).toBe(413);
      expect(big.connection).not.toBe("close");
      expect(await send("/healthz")).toMatchObject({ status: 200, reused: true });
      // a chunked body over the limit too, as long as it stays under the lingering bound
      const chunked = await send("/things", Buffer.alloc(1_000_000, 0x61), { chunked: true });
      expect(chunked.status).toBe(413);
      expect(await send("/healthz")).toMatchObject({ status: 200, reused: true });
    } finally {
      close();
    }
  });

  it("reads and discards the rest of a body a handler began to iterate and then refused (an upload's sniffed head)", async () => {
    // files reads an upload's first bytes through the stream's async iterator and answers 415 when they are not an
    // image: the iterator's 'readable' listener kept the stream from flowing, so the rest of the body was never
    // read and the next request on the connection hung (through the gateway: 504 after 15 s)
    const sniffing = await createService({ name: "sniff", logLevel: "silent" });
    sniffing.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));
    sniffing.post("/uploads", async (request) => {
      await (request.body as Readable)[Symbol.asyncIterator]().next();
      throw new HttpError(415, "unsupported_media_type", "The file is not a PNG or JPEG image");
    });
    await sniffing.listen({ host: "127.0.0.1", port: 0 });
    const { send, close } = keepAliveClient((sniffing.server.address() as AddressInfo).port);
    try {
      for (const size of [100_000, 1_200_000]) {
        const refused = await send("/uploads", Buffer.alloc(size, 0x61), { contentType: "application/octet-stream" });
        expect(refused.status).toBe(415);
        const next = await Promise.race([
          send("/healthz"),
          new Promise<string>((resolve) => setTimeout(() => resolve("no answer in 5 s"), 5_000)),
        ]);
        expect(next).toMatchObject({ status: 200, reused: true });
      }
    } finally {
      close();
      await sniffing.close();
    }
  });

  it("closes a connection whose refused body stops arriving, after the lingering bound, not the request timeout", async () => {
    const lingering = await createService({
      name: "linger",
      logLevel: "silent",
      bodyLimit: 1024,
      lingerTimeoutMs: 300,
    });
    lingering.post("/things", async () => ({ ok: true }));
    await lingering.listen({ host: "127.0.0.1", port: 0 });
    const { port } = lingering.server.address() as AddressInfo;
    try {
      // a declared 500 kB body of which 2 kB arrive: 413 at once, then the socket must not stay held open
      const socket = connect(port, "127.0.0.1");
      let answer = "";
      socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
      const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now())));
      socket.write(
        "POST /things HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500000\r\n\r\n",
      );
      socket.write(Buffer.alloc(2048, 0x61));
      const sent = Date.now();
      const within = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
      socket.destroy();
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(within, "the socket was still open after 5 s").toBeGreaterThan(0);
      expect(within - sent).toBeGreaterThanOrEqual(250);
    } finally {
      await lingering.close();
    }
  });

  it("answers malformed JSON 400, oversized bodies 413, unknown media types 415, unknown routes 404 — all enveloped", async () => {
    const bad = await app.inject({
      method: "POST",
      url: "/things",
      payload: "{",
      headers: { "content-type": "application/json" },
    });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, "malformed_json"]);
    // an empty body under a JSON content type is an absent body: this route requires one
    const empty = await app.inject({
      method: "POST",
      url: "/things",
      payload: "",
      headers: { "content-type": "application/json" },
    });
    expect([empty.statusCode, empty.json().error.code]).toEqual([400, "validation_failed"]);
    const poisoned = await app.inject({
      method: "POST",
      url: "/things",
      payload: '{"name":"a","__proto__":{"admin":true}}',
      headers: { "content-type": "application/json" },
    });
    expect(poisoned.statusCode).toBe(400);
    const big = await app.inject({ method: "POST", url: "/things", payload: { name: "x".repeat(2000) } });
    expect([big.statusCode, big.json().error.code]).toEqual([413, "payload_too_large"]);
    const media = await app.inject({
      method: "POST",
      url: "/things",
      payload: "x",
      headers: { "content-type": "text/csv" },
    });
    expect([media.statusCode, media.json().error.code]).toEqual([415, "unsupported_media_type"]);
    const missing = await app.inject({ method: "GET", url: "/nope?x=1" });
    expect(missing.json()).toEqual({ error: { code: "not_found", message: "No route for GET /nope" } });
  });

  it("maps HttpError to its status, code and headers; hides everything of an unexpected error", async () => {
    const tea = await app.inject({ method: "GET", url: "/teapot" });
    expect(tea.statusCode).toBe(418);
    expect(tea.headers["x-extra"]).toBe("1");
    expect(tea.json()).toEqual({ error: { code: "teapot", message: "I am a teapot" } });
    const boom = await app.inject({ method: "GET", url: "/boom" });
    expect(boom.statusCode).toBe(500);
    expect(boom.json()).toEqual({ error: { code: "internal_error", message: "Internal server error" } });
    expect(boom.body).not.toMatch(/SELECT|users|relation/);
  });

  it("keeps a well-formed inbound x-request-id and replaces a malformed one", async () => {
    const kept = await app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "abc-123" } });
    expect(kept.headers["x-request-id"]).toBe("abc-123");
    const replaced = await app.inject({
      method: "GET",
      url: "/healthz",
      headers: { "x-request-id": "bad id\u0000<script>" },
    });
    expect(replaced.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("sends security headers and honours the CORS allow-list, preflight included", async () => {
    const res = await app.inject({ method: "GET", url: "/healthz", headers: { origin: "https://b.example.com" } });
    expect(res.headers["access-control-allow-origin"]).toBe("https://b.example.com");
    for (const h of [
      "strict-transport-security",
      "x-content-type-options",
      "x-frame-options",
      "content-security-policy",
    ]) {
      expect(res.headers[h]).toBeDefined();
    }
    const pre = await app.inject({
      method: "OPTIONS",
      url: "/things",
      headers: { origin: "https://a.example.com", "access-control-request-method": "POST" },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("https://a.example.com");
    const denied = await app.inject({
      method: "GET",
      url: "/healthz",
      headers: { origin: "https://evil.example.com" },
    });
    expect(denied.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("healthz answers from the process; readyz from the dependencies", async () => {
    dependencyUp = false;
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const down = await app.inject({ method: "GET", url: "/readyz" });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toEqual({ status: "unavailable", checks: { dep: "fail" } });
    dependencyUp = true;
    expect((await app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
  });

  it("exposes RED metrics per route template plus process and event-loop metrics", async () => {
    await app.inject({ method: "POST", url: "/things", payload: { name: "m" } });
    const text = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(text).toMatch(
      /http_request_duration_seconds_count\{service="demo",method="POST",route="\/things",status_code="201"\} \d+/,
    );
    expect(text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/boom",status_code="500"\} \d+/);
    expect(text).toContain("nodejs_eventloop_lag_seconds");
    expect(text).toContain("process_resident_memory_bytes");
  });

  it("publishes OpenAPI from the route schemas, with the envelope as a shared schema", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(doc.paths["/things"].post.requestBody.content["application/json"].schema.required).toEqual(["name"]);
    expect(doc.paths["/things"].post.responses["400"]).toBeDefined();
    expect(doc.paths["/healthz"]).toBeUndefined();
    expect((await app.inject({ method: "GET", url: "/docs/" })).statusCode).toBe(200);
  });
});

describe("httpServiceOptions: the client's address behind a trusted proxy (TRUST_PROXY)", () => {
  it("takes x-forwarded-for only from a trusted peer, and only the address that peer saw", async () => {
    const config = loadConfig(Type.Object(HttpConfig), { LOG_LEVEL: "silent", TRUST_PROXY: "127.0.0.1" });
    const app = await createService(httpServiceOptions("demo", config));
    app.get("/ip", async (request) => ({ ip: request.ip }));
    try {
      const ipOf = async (remoteAddress: string, forwardedFor: string) =>
        (
          await app.inject({ method: "GET", url: "/ip", remoteAddress, headers: { "x-forwarded-for": forwardedFor } })
        ).json<{ ip: string }>().ip;
      expect(await ipOf("127.0.0.1", "203.0.113.9")).toBe("203.0.113.9");
      // an address the client wrote itself, left of the one the proxy saw, is not believed
      expect(await ipOf("127.0.0.1", "198.51.100.1, 203.0.113.9")).toBe("203.0.113.9");
      // a peer that is not a trusted proxy is the client, whatever it forwards
      expect(await ipOf("192.0.2.10", "203.0.113.9")).toBe("192.0.2.10");
    } finally {
      await app.close();
    }
    const untrusting = await createService(httpServiceOptions("demo", { ...config, TRUST_PROXY: "" }));
    untrusting.get("/ip", async (request) => ({ ip: request.ip }));
    const res = await untrusting.inject({
      method: "GET",
      url: "/ip",
      remoteAddress: "127.0.0.1",
      headers: { "x-forwarded-for": "203.0.113.9" },
    });
    expect(res.json()).toEqual({ ip: "127.0.0.1" });
    await untrusting.close();
  });
});

describe("HEAD on GET routes", () => {
  it("carry the GET answer.s length, also when the handler answers the HEAD itself, bodiless", async () => {
    const app = await createService({ name: "head", logLevel: "silent" });
    const thing = { id: "t1", name: "a JSON answer" };
    app.get(
      "/things/:id",
      { schema: { response: { 200: Type.Object({ id: Type.String(), name: Type.String() }) } } },
      async () => thing,
    );
    // as the gateway does: a HEAD passed on upstream comes back with the GET's length and no body
    app.get("/relayed", async (request, reply) => {
      const body = Buffer.from(JSON.stringify(thing));
      reply.type("application/json").header("content-length", String(body.length));
      return reply.send(request.method === "HEAD" ? Buffer.alloc(0) : body);
    });
    try {
      await app.listen({ host: "127.0.0.1", port: 0 });
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      for (const path of ["/things/t1", "/relayed"]) {
        const get = await fetch(`${base}${path}`);
        const length = String(Buffer.byteLength(await get.text()));
        expect(get.headers.get("content-length")).toBe(length);
        const head = await fetch(`${base}${path}`, { method: "HEAD" });
        expect([path, head.status, head.headers.get("content-length")]).toEqual([path, 200, length]);
        expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
        expect(await head.text()).toBe("");
      }
    } finally {
      await app.close();
    }
  });
});

describe("OpenAPI of routes that produce something other than JSON", () => {
  it("documents a 200 in the produced media type, and error envelopes as JSON", async () => {
    const app = await createService({ name: "produces", logLevel: "silent", openapi: {} });
    // an event stream declares no success schema (nothing validates a stream); a PDF declares its bytes
    app.get("/events", { schema: { produces: ["text/event-stream"], response: errorResponses(401, 404) } }, () => "");
    app.get(
      "/report",
      {
        schema: {
          produces: ["application/pdf"],
          response: { 200: Type.Unsafe({ type: "string", format: "binary" }), ...errorResponses(409) },
        },
      },
      () => "",
    );
    try {
      const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
      const events = doc.paths["/events"].get.responses;
      expect(Object.keys(events).sort()).toEqual(["200", "401", "404"]);
      expect(Object.keys(events["200"].content)).toEqual(["text/event-stream"]);
      const report = doc.paths["/report"].get.responses;
      expect(report["200"].content["application/pdf"].schema).toEqual({ type: "string", format: "binary" });
      for (const error of [events["401"], events["404"], report["409"]]) {
        expect(error.content).toEqual({
          "application/json": { schema: { $ref: "#/components/schemas/ErrorEnvelope" } },
        });
      }
    } finally {
      await app.close();
    }
  });
});
