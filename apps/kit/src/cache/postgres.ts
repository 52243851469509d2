/**
 * Embedded adapter of the `KeyValueStore` port on PostgreSQL, for the local stack (no Redis there). Values and
 * counters live in `ndt_kv.entries`, set members in `ndt_kv.set_members`; both survive restarts and are shared by
 * every process on the database.
 *
 * Every method is one statement or one transaction, so it is atomic like its Redis counterpart: `swap` locks the
 * row it replaces (of concurrent swaps exactly one sees the original), counters are incremented with
 * `INSERT … ON CONFLICT DO UPDATE`. Expired rows are ignored by every read (`expires_at > clock_timestamp()`),
 * replaced by writes, and deleted by a periodic sweep.
 */
import type { SqlDatabase, SqlExecutor } from "../postgres/port.js";
import { createSchemaOnce } from "../postgres/schema.js";
import type { CounterHit, KeyValueStore } from "../redis/port.js";

const SCHEMA = [
  "CREATE SCHEMA IF NOT EXISTS ndt_kv",
  `CREATE TABLE IF NOT EXISTS ndt_kv.entries (
     key text PRIMARY KEY,
     value text NOT NULL,
     expires_at timestamptz
   )`,
  "CREATE INDEX IF NOT EXISTS entries_expiry_idx ON ndt_kv.entries (expires_at) WHERE expires_at IS NOT NULL",
  `CREATE TABLE IF NOT EXISTS ndt_kv.set_members (
     key text NOT NULL,
     member text NOT NULL,
     expires_at timestamptz NOT NULL,
     PRIMARY KEY (key, member)
   )`,
  "CREATE INDEX IF NOT EXISTS set_members_expiry_idx ON ndt_kv.set_members (expires_at)",
];
const SCHEMA_LOCK = 0x6e_64_74_6b; // "ndtk"

const LIVE = "(expires_at IS NULL OR expires_at > clock_timestamp())";
const EXPIRED = "(e.expires_at IS NOT NULL AND e.expires_at <= clock_timestamp())";
const MS = (param: string) => `clock_timestamp() + make_interval(secs => ${param}::float8 / 1000)`;

// first hit (or a dead window) starts a window of $2 ms at 1; a live window counts on; a key without expiry gets one
const HIT = `INSERT INTO ndt_kv.entries AS e (key, value, expires_at) VALUES ($1, '1', ${MS("$2")})
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN ${EXPIRED} THEN '1' ELSE (e.value::bigint + 1)::text END,
  expires_at = CASE WHEN e.expires_at IS NULL OR ${EXPIRED} THEN excluded.expires_at ELSE e.expires_at END
RETURNING e.value::bigint AS count,
  ceil(extract(epoch FROM e.expires_at - clock_timestamp()) * 1000)::bigint AS reset_ms`;

export interface PgKeyValueOptions {
  /** Added to every key (like REDIS_KEY_PREFIX), so several services or tests share the tables. */
  prefix?: string;
  /** How often expired rows are deleted. @default 60000 */
  sweepMs?: number;
}

export class PgKeyValueStore implements KeyValueStore {
  private readonly ready: () => Promise<void>;
  private readonly prefix: string;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly db: SqlDatabase,
    opts: PgKeyValueOptions = {},
  ) {
    this.prefix = opts.prefix ?? "";
    this.ready = createSchemaOnce(db, SCHEMA_LOCK, SCHEMA);
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), opts.sweepMs ?? 60_000);
    this.sweeper.unref();
  }

  private k(key: string) {
    return this.prefix + key;
  }

  /** Delete expired rows (reads already ignore them). Returns how many went. */
  async sweep(): Promise<number> {
    await this.ready();
    const a = await this.db.query("DELETE FROM ndt_kv.entries WHERE expires_at <= clock_timestamp()");
    const b = await this.db.query("DELETE FROM ndt_kv.set_members WHERE expires_at <= clock_timestamp()");
    return a.rowCount + b.rowCount;
  }

  async get(key: string): Promise<string | null> {
    await this.ready();
    const { rows } = await this.db.query<{ value: string }>(
      `SELECT value FROM ndt_kv.entries WHERE key = $1 AND ${LIVE}`,
      [this.k(key)],
    );
    return rows[0]?.value ?? null;
  }

  async getMany(keys: readonly string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    await this.ready();
    return this.getManyOn(this.db, keys);
  }

  /** The live values of `keys`, in order, read through `db` (the store itself or the transaction of `hitAndGet`). */
  private async getManyOn(db: SqlExecutor, keys: readonly string[]): Promise<(string | null)[]> {
    const { rows } = await db.query<{ key: string; value: string }>(
      `SELECT key, value FROM ndt_kv.entries WHERE key = ANY($1::text[]) AND ${LIVE}`,
      [keys.map((k) => this.k(k))],
    );
    const byKey = new Map(rows.map((r) => [r.key, r.value]));
    return keys.map((k) => byKey.get(this.k(k)) ?? null);
  }

  async set(key: string, value: string, opts: { ttlMs?: number; onlyIfAbsent?: boolean } = {}): Promise<boolean> {
    await this.ready();
    const expires = opts.ttlMs !== undefined ? MS("$3") : "NULL::timestamptz";
    const params = opts.ttlMs !== undefined ? [this.k(key), value, opts.ttlMs] : [this.k(key), value];
    // with onlyIfAbsent an existing live row is left alone (no row comes back); an expired one counts as absent
    const { rowCount } = await this.db.query(
      `INSERT INTO ndt_kv.entries AS e (key, value, expires_at) VALUES ($1, $2, ${expires})
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
       ${opts.onlyIfAbsent ? `WHERE ${EXPIRED}` : ""}
       RETURNING 1`,
      params,
    );
    return rowCount === 1;
  }

  async swap(key: string, value: string): Promise<string | null> {
    await this.ready();
    // FOR UPDATE makes a concurrent swap wait and then read the value this one wrote
    const { rows } = await this.db.query<{ previous: string }>(
      `WITH old AS (
         SELECT key, value FROM ndt_kv.entries WHERE key = $1 AND ${LIVE} FOR UPDATE
       )
       UPDATE ndt_kv.entries e SET value = $2 FROM old WHERE e.key = old.key
       RETURNING old.value AS previous`,
      [this.k(key), value],
    );
    return rows[0]?.previous ?? null;
  }

  async del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    await this.ready();
    const full = keys.map((k) => this.k(k));
    return this.db.transaction(async (tx) => {
      const values = await tx.query<{ key: string }>(
        `DELETE FROM ndt_kv.entries WHERE key = ANY($1::text[]) RETURNING key, ${LIVE} AS live`,
        [full],
      );
      const sets = await tx.query<{ key: string; live: boolean }>(
        `DELETE FROM ndt_kv.set_members WHERE key = ANY($1::text[]) RETURNING key, expires_at > clock_timestamp() AS live`,
        [full],
      );
      const gone = new Set<string>();
      for (const r of [...values.rows, ...sets.rows] as { key: string; live: boolean }[]) if (r.live) gone.add(r.key);
      return gone.size;
    });
  }

  private async hitOn(db: SqlExecutor, key: string, windowMs: number): Promise<CounterHit> {
    const { rows } = await db.query<{ count: string; reset_ms: string }>(HIT, [this.k(key), windowMs]);
    return { count: Number(rows[0]!.count), resetMs: Math.max(0, Number(rows[0]!.reset_ms)) };
  }

  async hit(key: string, windowMs: number): Promise<CounterHit> {
    await this.ready();
    return this.hitOn(this.db, key, windowMs);
  }

  async hitAndGet(
    hits: readonly { key: string; windowMs: number }[],
    reads: readonly string[],
  ): Promise<{ hits: CounterHit[]; values: (string | null)[] }> {
    if (hits.length === 0 && reads.length === 0) return { hits: [], values: [] };
    await this.ready();
    return this.db.transaction(async (tx) => {
      const counted: CounterHit[] = [];
      for (const h of hits) counted.push(await this.hitOn(tx, h.key, h.windowMs));
      if (reads.length === 0) return { hits: counted, values: [] };
      return { hits: counted, values: await this.getManyOn(tx, reads) };
    });
  }

  async unhit(key: string): Promise<void> {
    await this.ready();
    await this.db.query(`UPDATE ndt_kv.entries SET value = (value::bigint - 1)::text WHERE key = $1 AND ${LIVE}`, [
      this.k(key),
    ]);
  }

  async addToSet(key: string, member: string, ttlMs: number): Promise<void> {
    await this.ready();
    await this.db.transaction(async (tx) => {
      const k = this.k(key);
      // members of a set that has expired do not come back with the new one
      await tx.query("DELETE FROM ndt_kv.set_members WHERE key = $1 AND expires_at <= clock_timestamp()", [k]);
      await tx.query(`UPDATE ndt_kv.set_members SET expires_at = ${MS("$2")} WHERE key = $1`, [k, ttlMs]);
      await tx.query(
        `INSERT INTO ndt_kv.set_members (key, member, expires_at) VALUES ($1, $2, ${MS("$3")})
         ON CONFLICT (key, member) DO UPDATE SET expires_at = excluded.expires_at`,
        [k, member, ttlMs],
      );
    });
  }

  async setMembers(key: string): Promise<string[]> {
    await this.ready();
    const { rows } = await this.db.query<{ member: string }>(
      "SELECT member FROM ndt_kv.set_members WHERE key = $1 AND expires_at > clock_timestamp()",
      [this.k(key)],
    );
    return rows.map((r) => r.member);
  }

  async ping(): Promise<void> {
    await this.db.query("SELECT 1");
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
