/** Key rotation by kid (GUARDRAILS P3): the next key is published before it signs; old tokens keep working. */
import { generateKeyPairSync, sign } from "node:crypto";
import { loadConfig, PgDatabase, PostgresConfig, type ServiceApp, StaticKeySource, TokenVerifier } from "@ndt/kit";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import { decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { KeyRing } from "../src/keys.js";
import { authConfig, bearer, json, SECRET } from "./helpers.js";

const db = await testDatabase("auth_rotation");
const kv = await testRedis("auth_rotation");

describe.skipIf(!db || !kv)("signing key rotation", () => {
  let app: ServiceApp;
  const rotationSec = 3;

  beforeAll(async () => {
    app = await buildApp({
      config: authConfig(db!, kv!, { KEY_ROTATION_DAYS: String(rotationSec / 86_400), KEY_PUBLISH_LEAD_SEC: "1" }),
    });
    await app.inject({
      method: "POST",
      url: "/api/v1/auth/register",
      ...json({ email: "rot@example.com", password: "long enough password", organization: "Rot" }),
    });
  });
  afterAll(async () => {
    await app?.close();
    await kv?.cleanup();
    await db?.drop();
  });

  const login = async () =>
    (
      await app.inject({
        method: "POST",
        url: "/api/v1/auth/login",
        ...json({ email: "rot@example.com", password: "long enough password" }),
      })
    ).json().accessToken as string;
  const kids = async () =>
    (await app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json().keys.map((k: { kid: string }) => k.kid);

  it("publishes the next key before using it, switches to it on time, and still accepts the previous key's tokens", async () => {
    const before = await login();
    const current = decodeProtectedHeader(before).kid!;
    const published = await kids();
    expect(published).toHaveLength(2);
    const next = published.find((k: string) => k !== current);
    expect(next).toBeDefined();

    await new Promise((r) => setTimeout(r, rotationSec * 1000 + 300));
    const after = await login();
    expect(decodeProtectedHeader(after).kid).toBe(next);
    expect((await app.inject({ method: "GET", url: "/api/v1/auth/me", headers: bearer(before) })).statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/api/v1/auth/me", headers: bearer(after) })).statusCode).toBe(200);
    expect(await kids()).toContain(current);
  });

  it("a ring that signed ES256 before switches to EdDSA at once, keeps the ES256 key published until its tokens expired, and still verifies them", async () => {
    const pg = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: db!.url }));
    try {
      await pg.query("DELETE FROM signing_keys");
      const accessTtlMs = 900_000;
      const ring = new KeyRing(pg, { secret: SECRET, rotationMs: 30 * 86_400_000, leadMs: 3_600_000, accessTtlMs });
      // the old ring's active ES256 key and its pending successor, as the ES256 code stored them
      const legacy = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const encrypt = (ring as unknown as { encrypt(plain: string): string }).encrypt.bind(ring);
      const row = (kid: string, activatesAt: number) => [
        kid,
        "ES256",
        { ...legacy.publicKey.export({ format: "jwk" }), kid, alg: "ES256", use: "sig" },
        encrypt(JSON.stringify(legacy.privateKey.export({ format: "jwk" }))),
        new Date(activatesAt),
      ];
      const insert =
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_jwk_enc, activates_at) VALUES ($1, $2, $3, $4, $5)";
      await pg.query(insert, row("es-active", Date.now() - 3_600_000));
      await pg.query(insert, row("es-pending", Date.now() + 3_600_000));
      await ring.sync();

      expect(ring.signingKey().alg).toBe("EdDSA");
      const published = ring.jwks().keys.map((k) => k.kid);
      expect(published).toContain("es-active");
      expect(published).not.toContain("es-pending");
      const { rows } = await pg.query<{ retires_at: Date }>(
        "SELECT retires_at FROM signing_keys WHERE kid = 'es-active'",
      );
      expect(rows[0]!.retires_at.getTime()).toBeGreaterThan(Date.now() + accessTtlMs);

      // a token the old key signed before the switch is still accepted
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64({ alg: "ES256", kid: "es-active", typ: "at+jwt" })}.${b64({ sub: "u", org: "o", role: "viewer", sid: "s", jti: "j", iss: "ndt-auth", aud: "ndt-api", iat: now, nbf: now, exp: now + 60 })}`;
      const sig = sign("sha256", Buffer.from(input), { key: legacy.privateKey, dsaEncoding: "ieee-p1363" });
      const verifier = new TokenVerifier({
        issuer: "ndt-auth",
        audience: "ndt-api",
        keys: new StaticKeySource(() => ring.verificationKeys()),
      });
      expect((await verifier.verify(`${input}.${sig.toString("base64url")}`)).sub).toBe("u");
    } finally {
      await pg.close();
    }
  });
});
