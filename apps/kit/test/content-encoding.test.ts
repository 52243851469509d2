/** A compressed request body is refused as such (415), not misread as malformed JSON or stored compressed. */
import { gzipSync } from "node:zlib";
import { Type } from "@sinclair/typebox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createService, type ServiceApp, StrictObject } from "../src/index.js";

describe("request content encodings", () => {
  let app: ServiceApp;

  beforeAll(async () => {
    app = await createService({ name: "demo", logLevel: "silent" });
    app.post("/things", { schema: { body: StrictObject({ name: Type.String() }) } }, async (request) => ({
      name: request.body.name,
    }));
    await app.ready();
  });
  afterAll(() => app.close());

  const post = (body: string | Buffer, headers: Record<string, string>) =>
    app.inject({
      method: "POST",
      url: "/things",
      payload: body,
      headers: { "content-type": "application/json", ...headers },
    });

  it("answers 415 unsupported_content_encoding to gzip, br and deflate bodies, naming identity as accepted", async () => {
    for (const encoding of ["gzip", "br", "deflate", "gzip, identity", "GZIP"]) {
      const res = await post(gzipSync('{"name":"weld"}'), { "content-encoding": encoding });
      expect(res.statusCode, encoding).toBe(415);
      expect(res.json(), encoding).toEqual({
        error: { code: "unsupported_content_encoding", message: "Request bodies must not be compressed" },
      });
      expect(res.headers["accept-encoding"], encoding).toBe("identity");
      expect(res.headers["x-request-id"], encoding).toBeTruthy();
    }
  });

  it("ignores the header on a request without a body", async () => {
    const res = await app.inject({ method: "GET", url: "/healthz", headers: { "content-encoding": "gzip" } });
    expect(res.statusCode).toBe(200);
  });

  it("takes a body declared identity, or with no encoding, as before", async () => {
    const declared: Record<string, string>[] = [{}, { "content-encoding": "identity" }, { "content-encoding": "" }];
    for (const headers of declared) {
      const res = await post('{"name":"weld"}', headers);
      expect(res.statusCode, JSON.stringify(headers)).toBe(200);
      expect(res.json()).toEqual({ name: "weld" });
    }
  });
});
