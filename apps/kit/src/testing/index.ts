/**
 * Test helpers for services built on kit: real PostgreSQL and Redis, isolated per test file.
 *
 * Rule: when a server is unreachable the helper THROWS if `process.env.CI` is set (CI must never pass by skipping),
 * and otherwise prints why and returns undefined so the suite can `describe.skipIf(!db)`.
 *
 * ```ts
 * const db = await testDatabase("auth");      // a fresh database, dropped by db.drop()
 * const kv = await testRedis("auth");         // a unique key prefix, cleaned by kv.cleanup()
 * describe.skipIf(!db || !kv)("auth", () => { ... });
 * ```
 * Env overrides: DATABASE_URL (a server + database to connect to for CREATE DATABASE), REDIS_URL.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";

const DEFAULT_DATABASE_URLS = ["postgres://postgres@127.0.0.1:5432/test", "postgres://root@127.0.0.1:5432/test"];
const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0";

/** Decide what an unreachable server means here: a failure in CI, a printed skip elsewhere. */
export function serverUnavailable(what: string, err: unknown): undefined {
  const reason = `${what} is unreachable (${err instanceof Error ? err.message : String(err)})`;
  if (process.env.CI) throw new Error(`${reason}; CI is set, so this is a failure, not a skip`);
  console.warn(`SKIPPING: ${reason}. Start it or set the URL to run these tests.`);
  return undefined;
}

function unique(label: string) {
  return `${label.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${randomBytes(4).toString("hex")}`;
}

export interface TestDatabase {
  /** URL of the fresh database. */
  url: string;
  drop(): Promise<void>;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/** A new empty database on the test server (CREATE DATABASE), or undefined when skipping. */
export async function testDatabase(label: string): Promise<TestDatabase | undefined> {
  const candidates = process.env.DATABASE_URL ? [process.env.DATABASE_URL] : DEFAULT_DATABASE_URLS;
  let admin: pg.Client | undefined;
  let baseUrl = "";
  let lastError: unknown;
  for (const url of candidates) {
    try {
      admin = await connect(url);
      baseUrl = url;
      break;
    } catch (err) {
      lastError = err;
    }
  }
  if (!admin) return serverUnavailable(`PostgreSQL (${candidates.join(" or ")})`, lastError);
  const name = `t_${unique(label)}`;
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = await connect(baseUrl);
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export interface TestRedis {
  url: string;
  /** Unique key prefix for this test file: pass it as REDIS_KEY_PREFIX. */
  prefix: string;
  /** Delete every key under the prefix. */
  cleanup(): Promise<void>;
}

export async function testRedis(label: string): Promise<TestRedis | undefined> {
  const url = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    return serverUnavailable(`Redis (${url})`, err);
  }
  client.disconnect();
  const prefix = `test:${unique(label)}:`;
  return {
    url,
    prefix,
    async cleanup() {
      const c = new Redis(url, { maxRetriesPerRequest: 1 });
      try {
        let cursor = "0";
        do {
          const [next, keys] = await c.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
          cursor = next;
          if (keys.length > 0) await c.del(...keys);
        } while (cursor !== "0");
      } finally {
        c.disconnect();
      }
    },
  };
}

export { keyValueStoreContract } from "./contracts.js";
export { type KeepAliveExchange, keepAliveClient } from "./keep-alive.js";
export { type TcpProxy, tcpProxy } from "./proxy.js";
export { type JobQueueHarness, jobQueueContract, waitUntil } from "./queue-contract.js";
export { type ObjectStoreHarness, objectStoreContract } from "./objects-contract.js";
export { type TestIssuer, testIssuer } from "./issuer.js";
export { type TestS3, type TestS3Process, testS3, testS3Process } from "./s3.js";
