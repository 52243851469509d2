import { loadConfig, RedisConfig, RedisStore, type ServiceApp, SessionRevocations } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { SessionStore } from "../src/sessions.js";
import { authConfig, bearer, json } from "./helpers.js";

const db = await testDatabase("auth_api");
const kv = await testRedis("auth_api");

describe.skipIf(!db || !kv)("auth API (CONTRACTS.md §3)", () => {
  let app: ServiceApp;
  const password = "correct horse battery";

  beforeAll(async () => {
    app = await buildApp({
      config: authConfig(db!, kv!, {
        LOGIN_MAX_FAILURES_PER_ACCOUNT: "5",
        LOGIN_MAX_FAILURES_PER_IP: "30",
        // this suite registers a dozen organisations from 127.0.0.1 (throttle.test.ts tests that limit)
        REGISTER_MAX_PER_IP: "50",
      }),
    });
  });
  afterAll(async () => {
    await app?.close();
    await kv?.cleanup();
    await db?.drop();
  });

  const register = (email: string, organization = "Acme NDT", pw = password) =>
    app.inject({ method: "POST", url: "/api/v1/auth/register", ...json({ email, password: pw, organization }) });
  const login = (email: string, pw = password, ip = "10.0.0.1") =>
    app.inject({ method: "POST", url: "/api/v1/auth/login", remoteAddress: ip, ...json({ email, password: pw }) });
  const me = (token: string) => app.inject({ method: "GET", url: "/api/v1/auth/me", headers: bearer(token) });

  it("register creates an organisation whose first user is its admin", async () => {
    const res = await register("Alice@Example.com");
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      user: { id: expect.any(String), email: "alice@example.com", role: "admin" },
      organization: { id: expect.any(String), name: "Acme NDT" },
    });
  });

  it("register answers 409 email_taken for an existing email, whatever its case", async () => {
    const res = await register("ALICE@example.com", "Other org");
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ error: { code: "email_taken", message: expect.any(String) } });
  });

  it("accepts passwords of 12 and 128 characters and rejects 11 and 129", async () => {
    expect((await register("p12@example.com", "o", "a".repeat(12))).statusCode).toBe(201);
    expect((await register("p128@example.com", "o", "b".repeat(128))).statusCode).toBe(201);
    const short = await register("p11@example.com", "o", "a".repeat(11));
    expect(short.statusCode).toBe(400);
    expect(short.json().error.code).toBe("validation_failed");
    expect((await register("p129@example.com", "o", "b".repeat(129))).statusCode).toBe(400);
  });

  it("stores passwords as argon2id with m >= 19456 KiB, t >= 2, p = 1", async () => {
    const { Client } = (await import("pg")).default;
    const c = new Client({ connectionString: db!.url });
    await c.connect();
    const { rows } = await c.query("SELECT password_hash FROM users WHERE email = 'alice@example.com'");
    await c.end();
    const m = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(rows[0].password_hash);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(19456);
    expect(Number(m![2])).toBeGreaterThanOrEqual(2);
    expect(Number(m![3])).toBe(1);
  });

  it("login returns a Bearer pair; the access token is EdDSA with iss, aud, exp, nbf, jti, kid, org, role", async () => {
    const res = await login("alice@example.com");
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toEqual({
      accessToken: expect.any(String),
      refreshToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      tokenType: "Bearer",
      expiresIn: 900,
    });
    const header = decodeProtectedHeader(body.accessToken);
    expect(header.alg).toBe("EdDSA");
    const claims = decodeJwt(body.accessToken);
    expect(claims).toMatchObject({ iss: "ndt-auth", aud: "ndt-api", role: "admin" });
    for (const c of ["exp", "nbf", "iat", "jti", "sub", "org", "sid"]) expect(claims[c]).toBeDefined();
    expect(claims.exp! - claims.iat!).toBe(900);
    const jwks = (await app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json();
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(header.kid);
    for (const k of jwks.keys) expect(k.d).toBeUndefined();
  });

  it("me returns the caller and their organisation", async () => {
    const { accessToken } = (await login("alice@example.com")).json();
    const res = await me(accessToken);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      id: expect.any(String),
      email: "alice@example.com",
      role: "admin",
      organization: { id: expect.any(String), name: "Acme NDT" },
    });
  });

  it("login answers the same 401 invalid_credentials for a wrong password and an unknown account", async () => {
    const wrong = await login("alice@example.com", "wrong password!!", "10.0.0.2");
    const unknown = await login("nobody@example.com", password, "10.0.0.2");
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(wrong.json()).toEqual({ error: { code: "invalid_credentials", message: "Invalid email or password" } });
    expect(unknown.json()).toEqual(wrong.json());
  });

  it("throttles brute force per account: 429 with one generic error, even with the right password", async () => {
    await register("brute@example.com");
    const answers: number[] = [];
    for (let i = 0; i < 5; i++)
      answers.push((await login("brute@example.com", `wrong-password-${i}`, `10.1.0.${i}`)).statusCode);
    expect(answers).toEqual([401, 401, 401, 401, 401]);
    const blocked = await login("brute@example.com", password, "10.1.0.99");
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json()).toEqual({
      error: { code: "too_many_requests", message: "Too many login attempts, try again later" },
    });
    expect(Number(blocked.headers["retry-after"])).toBeGreaterThan(0);
    // same answer for an account that does not exist
    for (let i = 0; i < 5; i++) await login("ghost@example.com", `x-password-${i}`, `10.2.0.${i}`);
    expect((await login("ghost@example.com", password, "10.2.0.99")).json()).toEqual(blocked.json());
  });

  it("throttles per IP across accounts", async () => {
    const codes: number[] = [];
    for (let i = 0; i < 31; i++)
      codes.push((await login(`spray${i}@example.com`, "some password!", "10.9.9.9")).statusCode);
    expect(codes.slice(0, 30).every((c) => c === 401)).toBe(true);
    expect(codes[30]).toBe(429);
    // another IP is unaffected
    expect((await login("alice@example.com", password, "10.9.9.10")).statusCode).toBe(200);
  });

  it("refresh spends the token and issues a new pair; reusing a spent one revokes the whole family", async () => {
    const first = (await login("alice@example.com")).json();
    const r1 = await app.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      ...json({ refreshToken: first.refreshToken }),
    });
    expect(r1.statusCode).toBe(200);
    const second = r1.json();
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect((await me(second.accessToken)).statusCode).toBe(200);
    // reuse of the spent token
    const reuse = await app.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      ...json({ refreshToken: first.refreshToken }),
    });
    expect(reuse.statusCode).toBe(401);
    expect(reuse.json().error.code).toBe("invalid_token");
    // the family is gone: the newest refresh token and the access tokens of the session no longer work
    const after = await app.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      ...json({ refreshToken: second.refreshToken }),
    });
    expect(after.statusCode).toBe(401);
    expect((await me(second.accessToken)).statusCode).toBe(401);
    expect((await me(first.accessToken)).statusCode).toBe(401);
  });

  it("refresh rejects an unknown token with 401", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      ...json({ refreshToken: "A".repeat(43) }),
    });
    expect(res.statusCode).toBe(401);
  });

  it("logout ends the session: its access token answers 401 from then on, its refresh token too", async () => {
    const s = (await login("alice@example.com")).json();
    const other = (await login("alice@example.com")).json();
    const out = await app.inject({ method: "POST", url: "/api/v1/auth/logout", headers: bearer(s.accessToken) });
    expect(out.statusCode).toBe(204);
    expect((await me(s.accessToken)).statusCode).toBe(401);
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      ...json({ refreshToken: s.refreshToken }),
    });
    expect(r.statusCode).toBe(401);
    // another session of the same user is untouched
    expect((await me(other.accessToken)).statusCode).toBe(200);
  });

  it("a password change ends every session of the user", async () => {
    await register("pw@example.com");
    const a = (await login("pw@example.com")).json();
    const b = (await login("pw@example.com")).json();
    const res = await app.inject({
      method: "POST",
      url: "/api/v1/auth/password",
      ...json({ currentPassword: password, newPassword: "a brand new passphrase" }, bearer(a.accessToken)),
    });
    expect(res.statusCode).toBe(204);
    expect((await me(a.accessToken)).statusCode).toBe(401);
    expect((await me(b.accessToken)).statusCode).toBe(401);
    const rb = await app.inject({
      method: "POST",
      url: "/api/v1/auth/refresh",
      ...json({ refreshToken: b.refreshToken }),
    });
    expect(rb.statusCode).toBe(401);
    expect((await login("pw@example.com")).statusCode).toBe(401);
    expect((await login("pw@example.com", "a brand new passphrase")).statusCode).toBe(200);
  });

  it("throttles guesses of the current password in a password change like logins, on the same account counter", async () => {
    await register("guess@example.com");
    const { accessToken } = (await login("guess@example.com")).json();
    const change = (currentPassword: string) =>
      app.inject({
        method: "POST",
        url: "/api/v1/auth/password",
        remoteAddress: "10.3.0.1",
        ...json({ currentPassword, newPassword: "a brand new passphrase" }, bearer(accessToken)),
      });
    const answers: number[] = [];
    for (let i = 0; i < 5; i++) answers.push((await change(`wrong-guess-${i}`)).statusCode);
    expect(answers).toEqual([401, 401, 401, 401, 401]);
    const blocked = await change(password);
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json().error.code).toBe("too_many_requests");
    // the guesses count against the account's logins too
    expect((await login("guess@example.com", password, "10.3.0.2")).statusCode).toBe(429);
  });

  it("refuses a blank (or invisible) organisation name, a NUL character and a local part over 64 characters, storing nothing", async () => {
    const cases: [string, string][] = [
      ["blank@example.com", "  \t "],
      ["blank@example.com", "\u200b"],
      ["nul@example.com", "Acme\u0000Corp"],
      [`${"l".repeat(65)}@example.com`, "Acme"],
    ];
    for (const [email, organization] of cases) {
      const res = await register(email, organization);
      expect(res.statusCode, email).toBe(400);
      expect(res.json().error.code).toBe("validation_failed");
    }
    // stored trimmed
    const trimmed = await register("blank@example.com", " Acme\t");
    expect([trimmed.statusCode, trimmed.json().organization.name]).toEqual([201, "Acme"]);
    expect((await register(`${"l".repeat(64)}@example.com`, "Acme")).statusCode).toBe(201);
  });

  it("logout takes an empty body under a JSON content type as no body", async () => {
    await register("empty@example.com");
    const { accessToken } = (await login("empty@example.com")).json();
    const res = await app.inject({
      method: "POST",
      url: "/api/v1/auth/logout",
      payload: "",
      headers: { ...bearer(accessToken), "content-type": "application/json" },
    });
    expect(res.statusCode).toBe(204);
    expect((await me(accessToken)).statusCode).toBe(401);
  });

  it("org members: an admin adds users to their own organisation; others get 403", async () => {
    const admin = (await login("alice@example.com")).json();
    const add = (token: string, email: string, role: string) =>
      app.inject({
        method: "POST",
        url: "/api/v1/org/members",
        ...json({ email, password, role }, bearer(token)),
      });
    const res = await add(admin.accessToken, "ivan@example.com", "inspector");
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ id: expect.any(String), email: "ivan@example.com", role: "inspector" });
    expect((await add(admin.accessToken, "ivan@example.com", "viewer")).statusCode).toBe(409);
    const ivan = (await login("ivan@example.com")).json();
    const ivanMe = (await me(ivan.accessToken)).json();
    const aliceMe = (await me(admin.accessToken)).json();
    expect(ivanMe.role).toBe("inspector");
    expect(ivanMe.organization).toEqual(aliceMe.organization);
    const denied = await add(ivan.accessToken, "eve@example.com", "admin");
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe("forbidden");
    expect((await add(admin.accessToken, "x@example.com", "superuser")).statusCode).toBe(400);
    expect(
      (
        await app.inject({
          method: "POST",
          url: "/api/v1/org/members",
          ...json({ email: "y@example.com", password, role: "viewer" }),
        })
      ).statusCode,
    ).toBe(401);
  });

  it("rejects unknown fields, malformed JSON and oversized bodies with the envelope", async () => {
    const unknown = await app.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      ...json({ email: "alice@example.com", password, admin: true }),
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.code).toBe("validation_failed");
    const malformed = await app.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      payload: '{"email": "alice@example.com", "password": ',
      headers: { "content-type": "application/json" },
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toEqual({ error: { code: "malformed_json", message: expect.any(String) } });
    const big = await app.inject({
      method: "POST",
      url: "/api/v1/auth/register",
      ...json({ email: "big@example.com", password, organization: "x".repeat(2 * 1024 * 1024) }),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe("payload_too_large");
  });

  it("SQL-injection-shaped input is stored and matched literally", async () => {
    const evil = "Robert'); DROP TABLE users;--";
    const res = await register("bobby@example.com", evil);
    expect(res.statusCode).toBe(201);
    expect(res.json().organization.name).toBe(evil);
    const { accessToken } = (await login("bobby@example.com")).json();
    expect((await me(accessToken)).json().organization.name).toBe(evil);
    const inj = await login("alice@example.com' OR '1'='1", password, "10.3.0.1");
    expect([400, 401]).toContain(inj.statusCode);
    const inj2 = await login("x@example.com", "' OR '1'='1' --  ", "10.3.0.2");
    expect(inj2.statusCode).toBe(401);
    expect((await login("alice@example.com")).statusCode).toBe(200); // users table intact
  });

  it("every response carries x-request-id (an inbound one is kept), security headers and the CORS allow-list", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/.well-known/jwks.json",
      headers: { "x-request-id": "req-123", origin: "https://app.example.com" },
    });
    expect(res.headers["x-request-id"]).toBe("req-123");
    expect(res.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["strict-transport-security"]).toBeDefined();
    const evil = await app.inject({ method: "GET", url: "/nope", headers: { origin: "https://evil.example.com" } });
    expect(evil.statusCode).toBe(404);
    expect(evil.json().error.code).toBe("not_found");
    expect(evil.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(evil.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("probes, metrics and OpenAPI", async () => {
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks).toEqual({ postgres: "ok", cache: "ok" });
    const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(
      /http_request_duration_seconds_count\{service="auth",method="POST",route="\/api\/v1\/auth\/login",status_code="200"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /http_request_duration_seconds_count\{[^}]*route="\/api\/v1\/auth\/login",status_code="401"\} [1-9]/,
    );
    expect(metrics).toContain("nodejs_eventloop_lag_seconds");
    expect(metrics).toContain("process_cpu_seconds_total");
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/org/members",
        "/.well-known/jwks.json",
      ]),
    );
    expect(doc.paths["/api/v1/auth/login"].post.requestBody.required).toBe(true);
    // logout's body is optional (an absent one is `{}`), and the document says so
    expect(doc.paths["/api/v1/auth/logout"].post.requestBody.required).toBe(false);
    expect(doc.paths["/api/v1/auth/logout"].post.requestBody.content["application/json"].schema).toBeDefined();
    expect(JSON.stringify(doc)).not.toContain("x-request-body");
  });
});

describe.skipIf(!kv)("a refresh racing a revocation", () => {
  it("cannot keep the family alive: the same token presented twice at once, or a refresh during a logout", async () => {
    const store = new RedisStore(
      loadConfig(Type.Object(RedisConfig), { REDIS_URL: kv!.url, REDIS_KEY_PREFIX: `${kv!.prefix}race:` }),
    );
    const sessions = new SessionStore(store, new SessionRevocations(store, 60_000), 60_000);
    try {
      let survivors = 0;
      for (let trial = 0; trial < 40; trial++) {
        const { sid, refreshToken } = await sessions.create(`user-race-${trial}`);
        // half the trials: a stolen copy presented at the same moment; the others: a logout at the same moment
        const results =
          trial % 2 === 0
            ? await Promise.all([sessions.rotate(refreshToken), sessions.rotate(refreshToken)])
            : [(await Promise.all([sessions.rotate(refreshToken), sessions.revoke(sid)]))[0]];
        for (const result of results) {
          if (result.ok && (await sessions.rotate(result.refreshToken)).ok) survivors++;
        }
      }
      expect(survivors).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(!kv)("sessions kept alive by refreshing", () => {
  it("are still ended by a password change after the login that started them has aged out", async () => {
    const store = new RedisStore(
      loadConfig(Type.Object(RedisConfig), { REDIS_URL: kv!.url, REDIS_KEY_PREFIX: `${kv!.prefix}ttl:` }),
    );
    const ttlMs = 1_500;
    const sessions = new SessionStore(store, new SessionRevocations(store, 60_000), ttlMs);
    try {
      const started = await sessions.create("user-ttl");
      let token = started.refreshToken;
      // refresh well inside each lifetime, until the login itself is older than one lifetime
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 700));
        const next = await sessions.rotate(token);
        if (!next.ok) throw new Error(`refresh ${i} failed: ${next.reason}`);
        token = next.refreshToken;
      }
      await sessions.revokeAll("user-ttl");
      expect(await sessions.rotate(token)).toEqual({ ok: false, reason: "revoked" });
    } finally {
      await store.close();
    }
  });
});
