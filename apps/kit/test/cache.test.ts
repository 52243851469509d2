/**
 * The KeyValueStore contract against Redis and against the embedded PostgreSQL store, so the local stack's sessions
 * and rate limits behave like the cloud's.
 */
import { randomBytes } from "node:crypto";
import { Type } from "@sinclair/typebox";
import { afterAll, describe, expect, it } from "vitest";
import { PgKeyValueStore } from "../src/cache/postgres.js";
import { loadConfig } from "../src/config.js";
import { PgDatabase, PostgresConfig } from "../src/postgres/pg.js";
import { RedisConfig, RedisStore } from "../src/redis/redis.js";
import { keyValueStoreContract } from "../src/testing/contracts.js";
import { testDatabase, testRedis } from "../src/testing/index.js";

const redis = await testRedis("kit_cache");
const database = await testDatabase("kit_cache");
const db = database
  ? new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: database.url }))
  : undefined;
const fresh = () => `${randomBytes(4).toString("hex")}:`;

describe.skipIf(!redis)("KeyValueStore: Redis", () => {
  afterAll(() => redis?.cleanup());
  keyValueStoreContract(
    "RedisStore",
    async () =>
      new RedisStore(
        loadConfig(Type.Object(RedisConfig), { REDIS_URL: redis!.url, REDIS_KEY_PREFIX: `${redis!.prefix}${fresh()}` }),
      ),
  );
});

describe.skipIf(!db)("KeyValueStore: PostgreSQL", () => {
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });
  keyValueStoreContract("PgKeyValueStore", async () => new PgKeyValueStore(db!, { prefix: fresh() }));

  it("sweeps expired rows, which reads already ignored", async () => {
    const kv = new PgKeyValueStore(db!, { prefix: fresh() });
    await kv.set("short", "x", { ttlMs: 30 });
    await kv.addToSet("set", "m", 30);
    await kv.set("long", "y", { ttlMs: 60_000 });
    await new Promise((r) => setTimeout(r, 80));
    expect(await kv.get("short")).toBeNull();
    expect(await kv.sweep()).toBeGreaterThanOrEqual(2);
    const { rows } = await db!.query("SELECT key FROM ndt_kv.entries WHERE key LIKE '%short'");
    expect(rows).toEqual([]);
    expect(await kv.get("long")).toBe("y");
    await kv.close();
  });

  it("keeps its data across a new store on the same database (a restart)", async () => {
    const prefix = fresh();
    const a = new PgKeyValueStore(db!, { prefix });
    await a.set("session", "alive", { ttlMs: 60_000 });
    await a.close();
    const b = new PgKeyValueStore(db!, { prefix });
    expect(await b.get("session")).toBe("alive");
    await b.close();
  });
});
