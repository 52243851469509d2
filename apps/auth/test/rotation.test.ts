/** Key rotation by kid (GUARDRAILS P3): the next key is published before it signs; old tokens keep working. */
import type { ServiceApp } from "@ndt/kit";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import { decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { authConfig, bearer, json } from "./helpers.js";

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
});
