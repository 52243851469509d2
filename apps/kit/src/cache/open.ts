/**
 * How every service picks its key-value adapter: `CACHE_BACKEND=redis` (Redis / ElastiCache, the default) or
 * `postgres` (the local stack's embedded store, in the service's own database). Spread `CacheConfig` instead of
 * `RedisConfig`: it holds the Redis variables, with REDIS_URL required only for the redis backend.
 */
import { type Static, Type } from "@sinclair/typebox";
import { ConfigError } from "../config.js";
import type { SqlDatabase } from "../postgres/port.js";
import type { KeyValueStore } from "../redis/port.js";
import { RedisConfig, RedisStore } from "../redis/redis.js";
import { PgKeyValueStore } from "./postgres.js";
import type { WarnLogger } from "../logger.js";

export const CacheConfig = {
  CACHE_BACKEND: Type.Union([Type.Literal("redis"), Type.Literal("postgres")], { default: "redis" }),
  ...RedisConfig,
  REDIS_URL: Type.Optional(RedisConfig.REDIS_URL),
};
export const CacheConfigSchema = Type.Object(CacheConfig);
export type CacheSettings = Static<typeof CacheConfigSchema>;

/** The adapter `config` names; REDIS_KEY_PREFIX prefixes keys on both. The caller closes it. */
export function openKeyValueStore(
  config: CacheSettings,
  deps: { db?: SqlDatabase; log?: WarnLogger } = {},
): KeyValueStore {
  if (config.CACHE_BACKEND === "redis") {
    const url = config.REDIS_URL;
    if (!url) throw new ConfigError([{ variable: "REDIS_URL", reason: "is required when CACHE_BACKEND=redis" }]);
    return new RedisStore({ ...config, REDIS_URL: url }, deps.log);
  }
  if (!deps.db) {
    throw new ConfigError([{ variable: "CACHE_BACKEND", reason: "postgres needs the service's PostgreSQL database" }]);
  }
  return new PgKeyValueStore(deps.db, { prefix: config.REDIS_KEY_PREFIX });
}
