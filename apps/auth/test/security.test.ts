/**
 * The token security suite (GUARDRAILS P2, P12): every forged, altered, misaddressed or out-of-time token is
 * answered with the same 401, and a 5xx never carries internals.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, sign as cryptoSign } from "node:crypto";
import { Writable } from "node:stream";
import { loadConfig, PgDatabase, PostgresConfig, type ServiceApp } from "@ndt/kit";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import { decodeJwt, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { KeyRing } from "../src/keys.js";
import { authConfig, bearer, json, SECRET } from "./helpers.js";

const db = await testDatabase("auth_security");
const kv = await testRedis("auth_security");

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe.skipIf(!db || !kv)("access-token security", () => {
  let app: ServiceApp;
  let pg: PgDatabase;
  let ring: KeyRing;
  let valid: { accessToken: string; refreshToken: string };
  let claims: Record<string, unknown>;
  const logs: string[] = [];

  beforeAll(async () => {
    pg = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: db!.url }));
    app = await buildApp({
      config: authConfig(db!, kv!, { LOG_LEVEL: "error" }),
      db: pg,
      logStream: new Writable({
        write(chunk, _enc, cb) {
          logs.push(String(chunk));
          cb();
        },
      }),
    });
    // the same ring the service uses (same database and secret): signs tokens that are valid except for one claim
    ring = new KeyRing(pg, { secret: SECRET, rotationMs: 30 * 86_400_000, leadMs: 3_600_000, accessTtlMs: 900_000 });
    await ring.sync();
    await app.inject({
      method: "POST",
      url: "/api/v1/auth/register",
      ...json({ email: "sec@example.com", password: "long enough password", organization: "Sec" }),
    });
    valid = (
      await app.inject({
        method: "POST",
        url: "/api/v1/auth/login",
        ...json({ email: "sec@example.com", password: "long enough password" }),
      })
    ).json();
    claims = decodeJwt(valid.accessToken);
  });
  afterAll(async () => {
    await app?.close();
    await pg?.close();
    await kv?.cleanup();
    await db?.drop();
  });

  const me = (token: string) => app.inject({ method: "GET", url: "/api/v1/auth/me", headers: bearer(token) });
  const expect401 = async (token: string) => {
    const res = await me(token);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: { code: "unauthorized", message: "Invalid or expired token" } });
  };
  const now = () => Math.floor(Date.now() / 1000);
  /** A compact JWS with exactly this header and payload, signed with `key` (EdDSA unless the header says ES256). */
  const jws = (header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject) => {
    const input = `${b64(header)}.${b64(payload)}`;
    const sig =
      header.alg === "ES256"
        ? cryptoSign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" })
        : cryptoSign(null, Buffer.from(input), key);
    return `${input}.${sig.toString("base64url")}`;
  };
  const sign = async (
    payload: Record<string, unknown>,
    key: KeyObject = ring.signingKey().privateKey,
    kid = ring.signingKey().kid,
  ) => jws({ alg: "EdDSA", kid, typ: "at+jwt" }, payload, key);

  it("accepts the genuine token (the baseline every case below differs from)", async () => {
    expect((await me(valid.accessToken)).statusCode).toBe(200);
    expect((await me(await sign({ ...claims, jti: "other" }))).statusCode).toBe(200);
  });

  it("rejects alg: none", async () => {
    const header = { alg: "none", kid: ring.signingKey().kid, typ: "at+jwt" };
    await expect401(`${b64(header)}.${b64(claims)}.`);
    await expect401(`${b64({ ...header, alg: "None" })}.${b64(claims)}.`);
  });

  it("rejects HS256 signed with the public key (algorithm confusion)", async () => {
    const kid = ring.signingKey().kid;
    const pem = createPublicKey({ key: ring.signingKey().publicJwk as never, format: "jwk" })
      .export({ type: "spki", format: "pem" })
      .toString();
    for (const secret of [pem, JSON.stringify(ring.signingKey().publicJwk)]) {
      const forged = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", kid, typ: "at+jwt" })
        .sign(new TextEncoder().encode(secret));
      await expect401(forged);
    }
  });

  it("rejects a tampered payload", async () => {
    const [h, , s] = valid.accessToken.split(".");
    await expect401(`${h}.${b64({ ...claims, role: "admin", org: "00000000-0000-0000-0000-000000000000" })}.${s}`);
    await expect401(`${h}.${b64({ ...claims, exp: now() + 86_400 })}.${s}`);
  });

  it("rejects a wrong audience or issuer", async () => {
    await expect401(await sign({ ...claims, aud: "another-api" }));
    await expect401(await sign({ ...claims, iss: "https://evil.example.com" }));
  });

  it("rejects expired and not-yet-valid tokens", async () => {
    await expect401(await sign({ ...claims, iat: now() - 2000, nbf: now() - 2000, exp: now() - 5 }));
    await expect401(await sign({ ...claims, nbf: now() + 600, exp: now() + 1200 }));
  });

  it("rejects an unknown kid, and a foreign key claiming a known kid", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    await expect401(await sign(claims, privateKey, "attacker-key"));
    await expect401(await sign(claims, privateKey, ring.signingKey().kid));
    // a P-256 key's ES256 signature under the Ed25519 key's kid: the header's alg is not the key's
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await expect401(jws({ alg: "ES256", kid: ring.signingKey().kid, typ: "at+jwt" }, claims, ec.privateKey));
  });

  it("rejects tokens missing a required claim or of another type", async () => {
    const { sid: _sid, ...noSid } = claims;
    await expect401(await sign(noSid));
    const { exp: _exp, ...noExp } = claims;
    await expect401(await sign(noExp));
    await expect401(await sign({ ...claims, role: "root" }));
    await expect401(
      jws({ alg: "EdDSA", kid: ring.signingKey().kid, typ: "JWT" }, claims, ring.signingKey().privateKey),
    );
    await expect401(
      jws(
        { alg: "EdDSA", kid: ring.signingKey().kid, typ: "at+jwt", crit: ["x"], x: 1 },
        claims,
        ring.signingKey().privateKey,
      ),
    );
  });

  it("rejects garbage and non-bearer credentials", async () => {
    for (const token of ["abc", "a.b.c", `${valid.accessToken}x`, "e30.e30.e30"]) await expect401(token);
    const empty = await app.inject({ method: "GET", url: "/api/v1/auth/me", headers: { authorization: "Bearer " } });
    expect(empty.statusCode).toBe(401);
    const basic = await app.inject({
      method: "GET",
      url: "/api/v1/auth/me",
      headers: { authorization: "Basic dXNlcjpwYXNz" },
    });
    expect(basic.statusCode).toBe(401);
  });

  it("a 5xx carries no stack, SQL or internal message; the log has it, with the request id", async () => {
    await pg.close(); // the database goes away under the service
    const res = await app.inject({
      method: "GET",
      url: "/api/v1/auth/me",
      headers: { ...bearer(valid.accessToken), "x-request-id": "trace-5xx-1" },
    });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: "internal_error", message: "Internal server error" } });
    expect(res.body).not.toMatch(/SELECT|users|pool|stack|\.ts:|Error:/);
    expect(res.headers["x-request-id"]).toBe("trace-5xx-1");
    const line = logs.find((l) => l.includes('"requestId":"trace-5xx-1"') && l.includes('"level":50'));
    expect(line).toBeDefined();
    expect(line).toContain("pool");
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks.postgres).toBe("fail");
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
  });
});
