/**
 * The key-value port services use for sessions, revocation lists and rate limits. `RedisStore` implements it over
 * Redis/ElastiCache; `PgKeyValueStore` (cache/postgres.ts) implements the same contract in PostgreSQL for the local
 * stack.
 * Every operation is atomic on the server. Keys are relative: the store adds its own prefix.
 */
export interface CounterHit {
  /** Hits in the current window, this one included. */
  count: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
}

export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  /** Several keys in one round trip, in order. */
  getMany(keys: readonly string[]): Promise<(string | null)[]>;
  /** Set a value; with `onlyIfAbsent`, only when the key does not exist. Returns whether it was written. */
  set(key: string, value: string, opts?: { ttlMs?: number; onlyIfAbsent?: boolean }): Promise<boolean>;
  /** Atomically replace the value of an EXISTING key (its expiry kept) and return the previous value; null (and no
   * write) when the key does not exist. The building block of single-use tokens. */
  swap(key: string, value: string): Promise<string | null>;
  del(...keys: string[]): Promise<number>;
  /** Count a hit in a fixed window starting at the first hit (rate limits, throttles). */
  hit(key: string, windowMs: number): Promise<CounterHit>;
  /**
   * Count hits in several fixed windows and read several keys in ONE atomic step (one round trip): the gateway's
   * per-request IP and user counters plus the revocation check. (All keys must live on one shard: ElastiCache
   * with cluster mode disabled, as this platform runs it.)
   */
  hitAndGet(
    hits: readonly { key: string; windowMs: number }[],
    reads: readonly string[],
  ): Promise<{ hits: CounterHit[]; values: (string | null)[] }>;
  /** Take one hit back from a counter made by `hit` (no-op when the window is gone). */
  unhit(key: string): Promise<void>;
  /** Add to a set and (re)set the set's expiry. */
  addToSet(key: string, member: string, ttlMs: number): Promise<void>;
  setMembers(key: string): Promise<string[]>;
  /** Throws unless the server answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
