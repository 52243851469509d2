/**
 * Requests Node's HTTP parser refuses before any route runs, sent over raw sockets to a listening kit app: they get
 * the envelope, the security headers, a request id and `connection: close`, like every other answer.
 */
import { type AddressInfo, connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createService, type ServiceApp } from "../src/index.js";

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses the HTTP/1.1 responses in `raw`, one after another (each framed by its content-length). */
function parseResponses(raw: string): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) throw new Error(`an incomplete response: ${JSON.stringify(rest.slice(0, 200))}`);
    const [statusLine, ...lines] = rest.slice(0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    const bodyStart = end + 4;
    responses.push({
      status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1]),
      headers,
      body: rest.slice(bodyStart, bodyStart + length),
    });
    rest = rest.slice(bodyStart + length);
  }
  return responses;
}

/** Sends `request` as it is and collects everything the server writes until it closes the connection. */
function exchange(port: number, request: string | Buffer, timeoutMs = 5_000): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open ${timeoutMs} ms; it sent: ${Buffer.concat(chunks)}`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parseResponses(Buffer.concat(chunks).toString("latin1")));
    });
    socket.write(request);
  });
}

describe("requests refused by Node's HTTP parser", () => {
  let app: ServiceApp;
  let port: number;

  beforeAll(async () => {
    app = await createService({ name: "parser", logLevel: "silent" });
    app.get("/ok", async () => ({ ok: true }));
    app.post("/echo", async (request) => ({ got: request.body }));
    // answers at once, before the request's body, and keeps the response open until the connection goes
    app.get("/early", (request, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "text/plain" });
      reply.raw.write("early\n");
      request.raw.socket.once("close", () => reply.raw.end());
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(() => app?.close());

  /** What every answer here carries: the envelope, a request id, the security headers, connection: close. */
  const expectEnveloped = (response: RawResponse, status: number, code: string) => {
    expect(response.status).toBe(status);
    expect(response.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(JSON.parse(response.body)).toEqual({ error: { code, message: expect.any(String) } });
    expect(response.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(response.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(response.headers["strict-transport-security"]).toContain("max-age=");
    expect(response.headers["x-frame-options"]).toBe("SAMEORIGIN");
    expect(response.headers.connection).toBe("close");
  };

  it("answers headers over Node's size limit 431 headers_too_large", async () => {
    const [response, ...more] = await exchange(
      port,
      `GET /ok HTTP/1.1\r\nhost: x\r\nx-padding: ${"a".repeat(64 * 1024)}\r\n\r\n`,
    );
    expectEnveloped(response!, 431, "headers_too_large");
    expect(more).toEqual([]);
  });

  it("answers a URL over the size limit 431 too", async () => {
    const [response] = await exchange(port, `GET /ok?q=${"b".repeat(20 * 1024)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    expectEnveloped(response!, 431, "headers_too_large");
  });

  it("answers a malformed request line or header 400 bad_request", async () => {
    const requests = [
      "GET /ok HTTP/1.1\r\nhost: x\r\nbad\u0001name: 1\r\n\r\n",
      "GET /ok HTTP/1.1\r\nhost: x\r\nx-value: a\u0000b\r\n\r\n",
      "G@T /ok HTTP/1.1\r\nhost: x\r\n\r\n",
      "GET /ok HTTP/9.9\r\nhost: x\r\n\r\n",
    ];
    for (const request of requests) {
      const [response] = await exchange(port, request);
      expectEnveloped(response!, 400, "bad_request");
    }
  });

  it("answers a body with broken chunked framing 400, before the route answers anything", async () => {
    const [response, ...more] = await exchange(
      port,
      "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n" +
        "zz\r\n{}\r\n0\r\n\r\n",
    );
    expectEnveloped(response!, 400, "bad_request");
    expect(more).toEqual([]);
  });

  it("answers a malformed request after a good one on the same keep-alive connection", async () => {
    const [first, second, ...more] = await exchange(
      port,
      "GET /ok HTTP/1.1\r\nhost: x\r\n\r\nGET /ok HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
    );
    expect([first!.status, JSON.parse(first!.body)]).toEqual([200, { ok: true }]);
    expectEnveloped(second!, 400, "bad_request");
    expect(second!.headers["x-request-id"]).not.toBe(first!.headers["x-request-id"]);
    expect(more).toEqual([]);
  });

  it("cuts off a response already under way instead of writing an answer into it", async () => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.write("GET /early HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
    await expect.poll(() => received, { timeout: 5_000 }).toContain("early");
    socket.write("zz\r\n");
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).not.toContain("HTTP/1.1 400");
  });

  it("still serves well-formed requests", async () => {
    const [response] = await exchange(port, "GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    expect([response!.status, JSON.parse(response!.body)]).toEqual([200, { ok: true }]);
  });
});
