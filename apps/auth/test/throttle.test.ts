/**
 * Email enumeration through `register` and `org/members` is bounded: registrations per client IP (every attempt),
 * `email_taken` answers per organisation (new emails never count). Both refuse with 429 before any password is hashed,
 * and a parallel burst gets no more through than the limit.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ConfigError, loadConfig, PgDatabase, PostgresConfig, type ServiceApp } from "@ndt/kit";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from "vitest";
import { buildApp } from "../src/app.js";
import { loadAuthConfig } from "../src/config.js";
import { PasswordHasher } from "../src/passwords.js";
import { authConfig, bearer, json, SECRET } from "./helpers.js";

const db = await testDatabase("auth_throttle");
const kv = await testRedis("auth_throttle");

// nothing listens on port 9: a service that got past its config would fail to connect, not touch a real server
const REQUIRED = {
  DATABASE_URL: "postgres://ndt@127.0.0.1:9/ndt",
  REDIS_URL: "redis://127.0.0.1:9",
  SIGNING_KEY_SECRET: SECRET,
};
const BAD = {
  REGISTER_MAX_PER_IP: "0",
  REGISTER_THROTTLE_WINDOW_SEC: "an hour",
  MEMBER_MAX_TAKEN_EMAILS_PER_ORG: "ten",
  MEMBER_THROTTLE_WINDOW_SEC: "-900",
};

describe("throttle configuration", () => {
  it("defaults to 10 registrations per IP per hour and 10 taken emails per organisation per 15 minutes", () => {
    expect(loadAuthConfig(REQUIRED)).toMatchObject({
      REGISTER_MAX_PER_IP: 10,
      REGISTER_THROTTLE_WINDOW_SEC: 3600,
      MEMBER_MAX_TAKEN_EMAILS_PER_ORG: 10,
      MEMBER_THROTTLE_WINDOW_SEC: 900,
    });
  });

  it("names every bad throttle variable at once", () => {
    try {
      loadAuthConfig({ ...REQUIRED, ...BAD });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.variable).sort()).toEqual(Object.keys(BAD).sort());
    }
  });

  it("the service does not start on them: exit 1, each named on standard error", async () => {
    const server = fileURLToPath(new URL("../src/server.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", server], {
      env: { PATH: process.env.PATH, ...REQUIRED, ...BAD, LOG_LEVEL: "silent" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += String(chunk)));
    // a service that accepted the config would try to connect instead: end it rather than wait for it
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const code = await new Promise((resolve) => child.once("exit", resolve)).finally(() => clearTimeout(timer));
    expect(code).toBe(1);
    expect(stderr).toContain("invalid configuration");
    for (const variable of Object.keys(BAD)) expect(stderr).toContain(`${variable}:`);
  }, 30_000);
});

describe.skipIf(!db || !kv)("enumeration throttles", () => {
  const LIMIT = 3;
  const password = "correct horse battery";
  let app: ServiceApp;
  let pg: PgDatabase;
  let hashes: MockInstance<PasswordHasher["hash"]>;

  beforeAll(async () => {
    pg = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: db!.url }));
    app = await buildApp({
      config: authConfig(db!, kv!, {
        REGISTER_MAX_PER_IP: String(LIMIT),
        MEMBER_MAX_TAKEN_EMAILS_PER_ORG: String(LIMIT),
      }),
      db: pg,
    });
    // counts the hashes and still computes them
    hashes = vi.spyOn(PasswordHasher.prototype, "hash");
  });
  afterAll(async () => {
    hashes?.mockRestore();
    await app?.close();
    await pg?.close();
    await kv?.cleanup();
    await db?.drop();
  });

  const register = (email: string, organization: string, ip: string) =>
    app.inject({
      method: "POST",
      url: "/api/v1/auth/register",
      remoteAddress: ip,
      ...json({ email, password, organization }),
    });
  const countRows = async (sql: string, value: string) =>
    Number((await pg.query<{ n: string }>(sql, [value])).rows[0]!.n);
  const organizationsNamed = (name: string) =>
    countRows("SELECT count(*) AS n FROM organizations WHERE name = $1", name);
  const usersWithEmail = (email: string) => countRows("SELECT count(*) AS n FROM users WHERE email = $1", email);

  const token = async (email: string) => {
    const login = await app.inject({ method: "POST", url: "/api/v1/auth/login", ...json({ email, password }) });
    expect(login.statusCode).toBe(200);
    return login.json<{ accessToken: string }>().accessToken;
  };
  let organizations = 0;
  /** Registers an organisation (from an address of its own) and logs its admin in. */
  const admin = async (name: string) => {
    const email = `${name}@members.example`;
    expect((await register(email, name, `192.0.2.${++organizations}`)).statusCode).toBe(201);
    return token(email);
  };
  const addMember = (adminToken: string, email: string, role = "viewer") =>
    app.inject({ method: "POST", url: "/api/v1/org/members", ...json({ email, password, role }, bearer(adminToken)) });
  /** A 429 in login's envelope, with a Retry-After within the window. */
  const expectRefused = (
    answer: { statusCode: number; json: () => unknown; headers: Record<string, unknown> },
    message: string,
    windowSec: number,
  ) => {
    expect(answer.statusCode).toBe(429);
    expect(answer.json()).toEqual({ error: { code: "too_many_requests", message } });
    const retryAfter = Number(answer.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(windowSec);
  };
  const statuses = (answers: { statusCode: number }[]) =>
    answers.map((answer) => answer.statusCode).sort((a, b) => a - b);

  describe("register, per client IP", () => {
    it("counts every attempt, 201 or 409; over the limit: 429 with Retry-After, before hashing, creating nothing", async () => {
      const ip = "198.51.100.1";
      expect((await register("first@register.example", "Reg One", ip)).statusCode).toBe(201);
      expect((await register("first@register.example", "Reg Again", ip)).statusCode).toBe(409);
      expect((await register("second@register.example", "Reg Two", ip)).statusCode).toBe(201);

      hashes.mockClear();
      const blocked = await register("third@register.example", "Throttled Org", ip);
      expectRefused(blocked, "Too many registrations, try again later", 3600);
      expect(hashes).not.toHaveBeenCalled();
      expect(await organizationsNamed("Throttled Org")).toBe(0);
      expect(await usersWithEmail("third@register.example")).toBe(0);
      // a taken email answers the same 429: the limit says nothing about the email
      expect((await register("first@register.example", "Reg Again", ip)).json()).toEqual(blocked.json());
    });

    it("is per IP: another address still registers", async () => {
      expect((await register("third@register.example", "Throttled Org", "198.51.100.2")).statusCode).toBe(201);
      expect(await organizationsNamed("Throttled Org")).toBe(1);
    });

    it("lets at most the limit through a parallel burst, hashing no more", async () => {
      hashes.mockClear();
      const answers = await Promise.all(
        Array.from({ length: 4 * LIMIT }, (_, i) =>
          register(`burst${i}@register.example`, "Burst Org", "198.51.100.3"),
        ),
      );
      expect(statuses(answers)).toEqual([...Array(LIMIT).fill(201), ...Array(3 * LIMIT).fill(429)]);
      expect(await organizationsNamed("Burst Org")).toBe(LIMIT);
      expect(hashes).toHaveBeenCalledTimes(LIMIT);
    });
  });

  describe("org members, per organisation", () => {
    const taken = "first@register.example"; // another organisation's admin

    it("limits email_taken answers, never new emails; over the limit: 429 before hashing, adding nobody", async () => {
      const alice = await admin("alice");
      // a second admin of the same organisation, for the next test
      expect((await addMember(alice, "alice2@members.example", "admin")).statusCode).toBe(201);
      for (let i = 0; i < LIMIT; i++) {
        // more new emails than the limit between the taken ones: none of them counts
        for (let j = 0; j < LIMIT; j++)
          expect((await addMember(alice, `new-${i}-${j}@members.example`)).statusCode).toBe(201);
        const conflict = await addMember(alice, taken);
        expect(conflict.statusCode).toBe(409);
        expect(conflict.json().error.code).toBe("email_taken");
      }

      hashes.mockClear();
      const blocked = await addMember(alice, taken);
      expectRefused(blocked, "Too many attempts to add members, try again later", 900);
      // once over, a new email is refused alike, before its password is hashed
      const refused = await addMember(alice, "late@members.example");
      expect(refused.json()).toEqual(blocked.json());
      expect(hashes).not.toHaveBeenCalled();
      expect(await usersWithEmail("late@members.example")).toBe(0);
    });

    it("is per organisation: another admin of the same one is refused too (no fresh budget per admin minted), another organisation is not", async () => {
      const alice2 = await token("alice2@members.example");
      expect((await addMember(alice2, taken)).statusCode).toBe(429);
      expect((await addMember(alice2, "other-alice2@members.example")).statusCode).toBe(429);
      const bob = await admin("bob");
      expect((await addMember(bob, taken)).statusCode).toBe(409);
      expect((await addMember(bob, "other-bob@members.example")).statusCode).toBe(201);
    });

    it("answers email_taken at most the limit of times to a parallel burst, hashing no more", async () => {
      const carol = await admin("carol");
      hashes.mockClear();
      const answers = await Promise.all(Array.from({ length: 4 * LIMIT }, () => addMember(carol, taken)));
      expect(statuses(answers)).toEqual([...Array(LIMIT).fill(409), ...Array(3 * LIMIT).fill(429)]);
      expect(hashes).toHaveBeenCalledTimes(LIMIT);
    });

    it("a parallel onboarding burst does not use the limit up: afterwards the admin still adds, and hears email_taken", async () => {
      const dave = await admin("dave");
      const answers = await Promise.all(
        Array.from({ length: 4 * LIMIT }, (_, i) => addMember(dave, `onboard${i}@members.example`)),
      );
      // the additions in flight at once hold the limit's counts: the first LIMIT always pass, any beyond may wait
      const codes = statuses(answers);
      expect(codes.filter((code) => code === 201).length).toBeGreaterThanOrEqual(LIMIT);
      expect(codes.every((code) => code === 201 || code === 429)).toBe(true);
      expect((await addMember(dave, "after-burst@members.example")).statusCode).toBe(201);
      for (let i = 0; i < LIMIT; i++) expect((await addMember(dave, taken)).statusCode).toBe(409);
      expect((await addMember(dave, taken)).statusCode).toBe(429);
    });
  });

  it("documents 429 on every throttled route: these two, logins and password changes", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    for (const path of [
      "/api/v1/auth/register",
      "/api/v1/org/members",
      "/api/v1/auth/login",
      "/api/v1/auth/password",
    ]) {
      expect([path, Object.keys(doc.paths[path].post.responses)]).toEqual([path, expect.arrayContaining(["429"])]);
    }
  });
});
