import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Type } from "@sinclair/typebox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isUniqueViolation, loadConfig, PgDatabase, PostgresConfig, postgresTls } from "../src/index.js";
import { migrationsTableFor } from "../src/postgres/pg.js";
import { createSchemaOnce } from "../src/postgres/schema.js";
import { testDatabase } from "../src/testing/index.js";

const db = await testDatabase("kit_pg");
const settings = (env: Record<string, string>) => loadConfig(Type.Object(PostgresConfig), env);

describe.skipIf(!db)("PgDatabase", () => {
  let pg: PgDatabase;
  const dir = mkdtempSync(join(tmpdir(), "kit-migrations-"));
  writeFileSync(
    join(dir, "1700000000000_items.sql"),
    "-- Up Migration\nCREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE NOT NULL);\n-- Down Migration\nDROP TABLE items;\n",
  );

  beforeAll(() => {
    pg = new PgDatabase(settings({ DATABASE_URL: db!.url, DATABASE_STATEMENT_TIMEOUT_MS: "500" }));
  });
  afterAll(async () => {
    await pg?.close();
    await db?.drop();
  });

  it("applies migrations once; running again (or concurrently) applies nothing", async () => {
    const [first, second] = await Promise.all([pg.migrate(dir), pg.migrate(dir)]);
    expect([...first, ...second]).toEqual(["1700000000000_items"]);
    expect(await pg.migrate(dir)).toEqual([]);
  });

  it("lets a migration run longer than the statement timeout requests get", async () => {
    const slow = mkdtempSync(join(tmpdir(), "kit-slow-"));
    writeFileSync(
      join(slow, "1800000000000_slow.sql"),
      "-- Up Migration\nSELECT pg_sleep(0.8);\n-- Down Migration\nSELECT 1;\n",
    );
    await expect(pg.query("SELECT pg_sleep(0.8)")).rejects.toThrow(/statement timeout/);
    // a database-level default too (as RDS parameter groups set): a new session takes it unless told otherwise
    await pg.query(`ALTER DATABASE "${new URL(db!.url).pathname.slice(1)}" SET statement_timeout = 500`);
    try {
      expect(await pg.migrate(slow)).toEqual(["1800000000000_slow"]);
    } finally {
      await pg.query(`ALTER DATABASE "${new URL(db!.url).pathname.slice(1)}" RESET statement_timeout`);
    }
  });

  it("keeps each service's migration history apart, so services can share one database", async () => {
    const other = mkdtempSync(join(tmpdir(), "kit-other-"));
    const migrations = join(other, "svc", "migrations");
    mkdirSync(migrations, { recursive: true });
    // older than the first folder's migration: one shared history table would reject it as out of order
    writeFileSync(
      join(migrations, "1600000000000_things.sql"),
      "-- Up Migration\nCREATE TABLE things (id serial PRIMARY KEY);\n-- Down Migration\nDROP TABLE things;\n",
    );
    expect(migrationsTableFor(migrations)).toBe("pgmigrations_svc");
    expect(await pg.migrate(migrations)).toEqual(["1600000000000_things"]);
    expect(await pg.migrate(dir)).toEqual([]);
    expect(await pg.migrate(migrations)).toEqual([]);
  });

  it("commits a transaction that resolves and rolls back one that throws", async () => {
    await pg.transaction((tx) => tx.query("INSERT INTO items (name) VALUES ($1)", ["kept"]));
    await expect(
      pg.transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["dropped"]);
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    const { rows } = await pg.query<{ name: string }>("SELECT name FROM items ORDER BY id");
    expect(rows.map((r) => r.name)).toEqual(["kept"]);
  });

  it("passes values as parameters, never as SQL", async () => {
    const evil = "x'); DROP TABLE items; --";
    await pg.query("INSERT INTO items (name) VALUES ($1)", [evil]);
    const { rows } = await pg.query<{ name: string }>("SELECT name FROM items WHERE name = $1", [evil]);
    expect(rows).toEqual([{ name: evil }]);
    const dup = await pg.query("INSERT INTO items (name) VALUES ($1)", [evil]).catch((e: unknown) => e);
    expect(isUniqueViolation(dup)).toBe(true);
  });

  it("creates an adapter's schema once for concurrent callers, and tries again after a failed attempt", async () => {
    const lock = 0x6e_64_74_74; // "ndtt"
    // the INSERT shows how many times the statements ran; the first attempt fails on the missing table
    const create = createSchemaOnce(pg, lock, ["INSERT INTO schema_probe VALUES (1)"]);
    await expect(create()).rejects.toThrow(/schema_probe/);
    await pg.query("CREATE TABLE schema_probe (n int)");
    await Promise.all([create(), create(), create()]);
    await create();
    const { rows } = await pg.query<{ n: string }>("SELECT count(*) AS n FROM schema_probe");
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it("bounds statements with the configured timeout", async () => {
    await expect(pg.query("SELECT pg_sleep(2)")).rejects.toThrow(/timeout|cancel/i);
    await pg.ping(); // the pool is still usable
  });

  it("retries a failed connection with backoff, then gives up", async () => {
    const dead = new PgDatabase(
      settings({
        DATABASE_URL: "postgres://postgres@127.0.0.1:1/none",
        DATABASE_CONNECT_RETRIES: "2",
        DATABASE_CONNECT_TIMEOUT_MS: "200",
      }),
    );
    const warnings: number[] = [];
    const logged = new PgDatabase(
      settings({
        DATABASE_URL: "postgres://postgres@127.0.0.1:1/none",
        DATABASE_CONNECT_RETRIES: "2",
        DATABASE_CONNECT_TIMEOUT_MS: "200",
      }),
      { info: () => undefined, warn: (o) => warnings.push((o as { attempt: number }).attempt) },
    );
    await expect(dead.ping()).rejects.toThrow();
    await expect(logged.ping()).rejects.toThrow();
    expect(warnings).toEqual([0, 1]);
    await Promise.all([dead.close(), logged.close()]);
  });

  it("builds TLS settings from config", () => {
    const require = new PgDatabase(settings({ DATABASE_URL: db!.url, DATABASE_TLS: "require" }));
    const verify = new PgDatabase(settings({ DATABASE_URL: db!.url, DATABASE_TLS: "verify-full" }));
    expect((require.pool.options as { ssl?: unknown }).ssl).toEqual({ rejectUnauthorized: false });
    expect((verify.pool.options as { ssl?: unknown }).ssl).toEqual({ rejectUnauthorized: true });
    return Promise.all([require.close(), verify.close()]);
  });

  it("with DATABASE_IAM_AUTH, connects with an RDS IAM token signed for each connection instead of a password", async () => {
    // static credentials and a region, as IRSA's would resolve in a pod; the token is signed locally
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: "AKIDNDTTEST",
      AWS_SECRET_ACCESS_KEY: "ndt-test-secret",
      AWS_REGION: "eu-west-1",
    });
    try {
      const iam = new PgDatabase(settings({ DATABASE_URL: db!.url, DATABASE_IAM_AUTH: "true" }));
      const target = new URL(db!.url);
      const password = iam.pool.options.password as () => Promise<string>;
      const token = await password();
      // RDS's auth token: a presigned rds-db:connect URL for this host, port and user, valid 15 minutes
      expect(token.startsWith(`${target.hostname}:${target.port || 5432}/?`)).toBe(true);
      const query = new URLSearchParams(token.slice(token.indexOf("?") + 1));
      expect(query.get("Action")).toBe("connect");
      expect(query.get("DBUser")).toBe(decodeURIComponent(target.username));
      expect(query.get("X-Amz-Expires")).toBe("900");
      expect(query.get("X-Amz-Credential")).toMatch(/^AKIDNDTTEST\/\d{8}\/eu-west-1\/rds-db\/aws4_request$/);
      expect(await password()).toMatch(/X-Amz-Signature=[0-9a-f]{64}/);
      // the real server accepts the connection (it trusts this host, so the token is not checked here)
      expect((await iam.query<{ one: number }>("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      await iam.close();
    } finally {
      process.env = saved;
    }
    const bad = (url: string) => () => new PgDatabase(settings({ DATABASE_URL: url, DATABASE_IAM_AUTH: "true" }));
    expect(bad("postgres://app:secret@db.example.com:5432/ndt")).toThrow(/DATABASE_URL: carries a password/);
    expect(bad("postgres://db.example.com:5432/ndt")).toThrow(/DATABASE_URL: names no user/);
  });

  it("with DATABASE_PASSWORD_FILE, reads the password again for each new connection (a rotated secret is followed)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ndt-pgpass-"));
    const file = join(dir, "password");
    writeFileSync(file, "first\n");
    const withFile = new PgDatabase(settings({ DATABASE_URL: db!.url, DATABASE_PASSWORD_FILE: file }));
    try {
      const password = withFile.pool.options.password as () => Promise<string>;
      expect(await password()).toBe("first");
      writeFileSync(file, "rotated");
      expect(await password()).toBe("rotated");
      // the real server accepts the connection (it trusts this host, so the password is not checked here)
      expect((await withFile.query<{ one: number }>("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await withFile.close();
    }
    const both = () =>
      new PgDatabase(settings({ DATABASE_URL: db!.url, DATABASE_PASSWORD_FILE: file, DATABASE_IAM_AUTH: "true" }));
    expect(both).toThrow(/DATABASE_PASSWORD_FILE: is set, but DATABASE_IAM_AUTH=true/);
  });

  it("verifies Aurora and RDS Proxy endpoints against Amazon's roots with DATABASE_CA=aws-rds", () => {
    const ssl = postgresTls(
      settings({ DATABASE_URL: "postgres://a@b/c", DATABASE_TLS: "verify-full", DATABASE_CA: "aws-rds" }),
    );
    const ca = (ssl as { ca?: string[] }).ca ?? [];
    const subjects = ca.map((pem) => new X509Certificate(pem).subject);
    // Aurora presents a chain to its region's RDS root; RDS Proxy an ACM certificate under Amazon Trust Services
    expect(subjects.some((s) => s.includes("CN=Amazon RDS eu-west-1 Root CA RSA2048 G1"))).toBe(true);
    expect(subjects.some((s) => s.includes("CN=Amazon Root CA 1"))).toBe(true);
    expect((ssl as { rejectUnauthorized?: boolean }).rejectUnauthorized).toBe(true);
    // a file given explicitly wins; "system" adds nothing to Node's own store
    const dir = mkdtempSync(join(tmpdir(), "ndt-ca-"));
    writeFileSync(join(dir, "ca.pem"), ca[0]!);
    expect(
      postgresTls(
        settings({
          DATABASE_URL: "postgres://a@b/c",
          DATABASE_TLS: "verify-full",
          DATABASE_CA: "aws-rds",
          DATABASE_CA_FILE: join(dir, "ca.pem"),
        }),
      ),
    ).toEqual({ rejectUnauthorized: true, ca: ca[0] });
    expect(() => settings({ DATABASE_URL: "postgres://a@b/c", DATABASE_CA: "rds" })).toThrow(/DATABASE_CA/);
  });
});
