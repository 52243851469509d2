/**
 * Redis adapter (ioredis) implementing `KeyValueStore`.
 *
 * - TLS with `rediss://` URLs or `REDIS_TLS=true` (ElastiCache in-transit encryption); AUTH from the URL or
 *   `REDIS_PASSWORD` (ElastiCache AUTH token).
 * - timeouts: connect and per command, so a dead server fails requests fast instead of hanging them.
 * - reconnect: jittered exponential backoff, forever; while disconnected a command is retried at most
 *   `maxRetriesPerRequest` times and then fails.
 * - auto-pipelining: commands issued in the same tick share one round trip (the gateway's rate-limit + revocation
 *   checks cost one).
 */
import { readFileSync } from "node:fs";
import { type Static, Type } from "@sinclair/typebox";
import { Redis } from "ioredis";
import { jitteredDelay } from "../backoff.js";
import type { CounterHit, KeyValueStore } from "./port.js";
import type { WarnLogger } from "../logger.js";

export const RedisConfig = {
  REDIS_URL: Type.String({ pattern: "^rediss?://", description: "redis://host:6379/0 or rediss:// for TLS" }),
  REDIS_PASSWORD: Type.Optional(Type.String({ description: "AUTH token (ElastiCache)" })),
  REDIS_TLS: Type.Boolean({ default: false }),
  REDIS_CA_FILE: Type.Optional(Type.String()),
  REDIS_KEY_PREFIX: Type.String({ default: "ndt:" }),
  REDIS_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 5_000 }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 2_000 }),
};
export const RedisConfigSchema = Type.Object(RedisConfig);
export type RedisSettings = Static<typeof RedisConfigSchema>;

// INCR, start the window on the first hit, answer count and remaining window
const HIT = `local c = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}`;

// KEYS: the counters, then the keys to read; ARGV[1] = number of counters, ARGV[1 + i] = window of counter i
const HIT_AND_GET = `local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local c = redis.call('INCR', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[i + 1]); ttl = tonumber(ARGV[i + 1]) end
  out[#out + 1] = c
  out[#out + 1] = ttl
end
for i = n + 1, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out`;

// DECR only while the window exists: never creates a key without expiry
const UNHIT = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
return 0`;

export class RedisStore implements KeyValueStore {
  readonly client: Redis;
  private readonly prefix: string;

  constructor(settings: RedisSettings, log?: WarnLogger) {
    this.prefix = settings.REDIS_KEY_PREFIX;
    const tls = settings.REDIS_TLS || settings.REDIS_URL.startsWith("rediss://");
    this.client = new Redis(settings.REDIS_URL, {
      ...(settings.REDIS_PASSWORD ? { password: settings.REDIS_PASSWORD } : {}),
      ...(tls ? { tls: settings.REDIS_CA_FILE ? { ca: readFileSync(settings.REDIS_CA_FILE, "utf8") } : {} } : {}),
      connectTimeout: settings.REDIS_CONNECT_TIMEOUT_MS,
      commandTimeout: settings.REDIS_COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 2,
      retryStrategy: (times) => 50 + jitteredDelay(times, 100, 5_000),
      enableAutoPipelining: true,
      lazyConnect: false,
    });
    this.client.on("error", (err) => log?.warn({ err }, "redis connection error"));
    this.client.defineCommand("ndtHit", { numberOfKeys: 1, lua: HIT });
    this.client.defineCommand("ndtUnhit", { numberOfKeys: 1, lua: UNHIT });
    this.client.defineCommand("ndtHitAndGet", { lua: HIT_AND_GET });
  }

  private k(key: string) {
    return this.prefix + key;
  }

  get(key: string) {
    return this.client.get(this.k(key));
  }

  async getMany(keys: readonly string[]) {
    if (keys.length === 0) return [];
    return this.client.mget(keys.map((k) => this.k(k)));
  }

  async set(key: string, value: string, opts: { ttlMs?: number; onlyIfAbsent?: boolean } = {}) {
    const k = this.k(key);
    let r: string | null;
    if (opts.ttlMs !== undefined && opts.onlyIfAbsent) r = await this.client.set(k, value, "PX", opts.ttlMs, "NX");
    else if (opts.ttlMs !== undefined) r = await this.client.set(k, value, "PX", opts.ttlMs);
    else if (opts.onlyIfAbsent) r = await this.client.set(k, value, "NX");
    else r = await this.client.set(k, value);
    return r === "OK";
  }

  async swap(key: string, value: string) {
    // SET .. XX KEEPTTL GET: one atomic step (Redis ≥ 6.2)
    return (await this.client.call("SET", this.k(key), value, "XX", "KEEPTTL", "GET")) as string | null;
  }

  async del(...keys: string[]) {
    if (keys.length === 0) return 0;
    return this.client.del(...keys.map((k) => this.k(k)));
  }

  async hit(key: string, windowMs: number): Promise<CounterHit> {
    const [count, resetMs] = (await (
      this.client as unknown as { ndtHit(key: string, windowMs: number): Promise<[number, number]> }
    ).ndtHit(this.k(key), windowMs)) as [number, number];
    return { count, resetMs };
  }

  async hitAndGet(hits: readonly { key: string; windowMs: number }[], reads: readonly string[]) {
    const keys = [...hits.map((h) => this.k(h.key)), ...reads.map((r) => this.k(r))];
    const out = (await (
      this.client as unknown as { ndtHitAndGet(...args: (string | number)[]): Promise<(number | string | null)[]> }
    ).ndtHitAndGet(keys.length, ...keys, hits.length, ...hits.map((h) => h.windowMs))) as (number | string | null)[];
    return {
      hits: hits.map((_, i) => ({ count: Number(out[2 * i]), resetMs: Number(out[2 * i + 1]) })),
      // a Lua false (missing key) comes back as null; trailing nils may be dropped by the protocol
      values: reads.map((_, i) => {
        const v = out[2 * hits.length + i];
        return typeof v === "string" ? v : null;
      }),
    };
  }

  async unhit(key: string) {
    await (this.client as unknown as { ndtUnhit(key: string): Promise<number> }).ndtUnhit(this.k(key));
  }

  async addToSet(key: string, member: string, ttlMs: number) {
    const k = this.k(key);
    await this.client.multi().sadd(k, member).pexpire(k, ttlMs).exec();
  }

  setMembers(key: string) {
    return this.client.smembers(this.k(key));
  }

  async ping() {
    await this.client.ping();
  }

  async close() {
    if (this.client.status === "end") return;
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
