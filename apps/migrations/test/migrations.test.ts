/** The migrations Job's core against a real PostgreSQL: every service's SQL, applied once, into one database. */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, PgDatabase, PostgresConfig } from "@ndt/kit";
import { testDatabase } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import { afterAll, describe, expect, it } from "vitest";
import { findMigrations, migrateAll } from "../src/migrate.js";

const APPS_DIR = fileURLToPath(new URL("../../", import.meta.url));
const db = await testDatabase("migrations");

describe("findMigrations", () => {
  it("finds each service's migrations folder beside this app, in name order", () => {
    const found = findMigrations(APPS_DIR);
    expect(found.map((m) => m.service)).toEqual(expect.arrayContaining(["auth", "files"]));
    expect(found.map((m) => m.service)).toEqual([...found.map((m) => m.service)].sort());
    for (const { service, dir } of found) expect(dir).toBe(path.join(APPS_DIR, service, "migrations"));
  });
});

describe.skipIf(!db)("migrateAll", () => {
  const pg = db ? new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: db.url })) : undefined;
  afterAll(async () => {
    await pg?.close();
    await db?.drop();
  });

  it("applies every service's migrations into one database, then nothing on a re-run", async () => {
    const services = findMigrations(APPS_DIR);
    const first = await migrateAll(pg!, services);
    for (const { service } of services) expect(first[service]?.length, service).toBeGreaterThan(0);
    const { rows } = await pg!.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    const tables = rows.map((r) => r.table_name);
    expect(tables).toEqual(expect.arrayContaining(["inspections", "images", "detections", "outbox"]));
    expect(tables).toEqual(expect.arrayContaining(services.map((s) => `pgmigrations_${s.service}`)));
    const second = await migrateAll(pg!, services);
    for (const { service } of services) expect(second[service], service).toEqual([]);
  });
});
