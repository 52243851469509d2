/** Every service picks its adapters the same way: the config fragments and the open* factories. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Type } from "@sinclair/typebox";
import { describe, expect, it } from "vitest";
import {
  AmqpQueue,
  CacheConfig,
  ConfigError,
  DirectoryObjectStore,
  loadConfig,
  ObjectStoreConfig,
  openJobQueue,
  openKeyValueStore,
  openObjectStore,
  PgDatabase,
  PgKeyValueStore,
  PgQueue,
  PostgresConfig,
  QueueConfig,
  RedisStore,
  S3ObjectStore,
} from "../src/index.js";

const db = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: "postgres://nobody@127.0.0.1:1/x" }));

describe("adapter factories", () => {
  it("queue: amqp by default, postgres on the service's database, a clear error without one", async () => {
    const amqp = openJobQueue(loadConfig(Type.Object(QueueConfig), {}));
    expect(amqp).toBeInstanceOf(AmqpQueue);
    await amqp.close();
    const pgConfig = loadConfig(Type.Object(QueueConfig), { QUEUE_BACKEND: "postgres", QUEUE_LEASE_MS: "5000" });
    expect(pgConfig.QUEUE_LEASE_MS).toBe(5000);
    expect(openJobQueue(pgConfig, { db })).toBeInstanceOf(PgQueue);
    expect(() => openJobQueue(pgConfig)).toThrow(ConfigError);
    expect(() => loadConfig(Type.Object(QueueConfig), { QUEUE_BACKEND: "kafka" })).toThrow(/QUEUE_BACKEND/);
  });

  it("objects: s3 by default, a directory per bucket, errors naming the missing variable", async () => {
    const s3 = openObjectStore(loadConfig(Type.Object(ObjectStoreConfig), { S3_BUCKET: "uploads" }));
    expect(s3).toBeInstanceOf(S3ObjectStore);
    expect((s3 as S3ObjectStore).bucket).toBe("uploads");
    await s3.close();
    expect(() => openObjectStore(loadConfig(Type.Object(ObjectStoreConfig), {}))).toThrow(/S3_BUCKET/);

    const root = await mkdtemp(join(tmpdir(), "kit-open-"));
    const dirConfig = loadConfig(Type.Object(ObjectStoreConfig), { OBJECT_STORE: "directory", OBJECT_STORE_DIR: root });
    const reports = openObjectStore(dirConfig, { bucket: "reports" });
    expect(reports).toBeInstanceOf(DirectoryObjectStore);
    expect((reports as DirectoryObjectStore).root).toBe(join(root, "reports"));
    expect(() => openObjectStore(dirConfig, { bucket: "../escape" })).toThrow(ConfigError);
    const noDir = loadConfig(Type.Object(ObjectStoreConfig), { OBJECT_STORE: "directory", S3_BUCKET: "uploads" });
    expect(() => openObjectStore(noDir)).toThrow(/OBJECT_STORE_DIR/);
    await rm(root, { recursive: true, force: true });
  });

  it("cache: redis needs REDIS_URL only when chosen; postgres uses the service's database", async () => {
    const redis = openKeyValueStore(
      loadConfig(Type.Object(CacheConfig), { REDIS_URL: "redis://127.0.0.1:1/0", REDIS_CONNECT_TIMEOUT_MS: "100" }),
    );
    expect(redis).toBeInstanceOf(RedisStore);
    (redis as RedisStore).client.disconnect();
    expect(() => openKeyValueStore(loadConfig(Type.Object(CacheConfig), {}))).toThrow(/REDIS_URL/);
    const pgConfig = loadConfig(Type.Object(CacheConfig), { CACHE_BACKEND: "postgres" });
    const kv = openKeyValueStore(pgConfig, { db });
    expect(kv).toBeInstanceOf(PgKeyValueStore);
    await kv.close();
    expect(() => openKeyValueStore(pgConfig)).toThrow(ConfigError);
    await db.close();
  });
});
