/**
 * Schema bootstrap for kit's embedded adapters (key-value store, job queue), which own their tables instead of
 * shipping migrations: the statements must be idempotent (`CREATE … IF NOT EXISTS`).
 */
import type { SqlDatabase } from "./port.js";

/**
 * A function that creates the schema on its first call and answers the same promise afterwards. The statements run
 * in one transaction under the advisory lock `lockKey`, so concurrent processes do not race on CREATE; a failed
 * attempt is forgotten, so the next call tries again (the database may have been down).
 */
export function createSchemaOnce(db: SqlDatabase, lockKey: number, statements: readonly string[]): () => Promise<void> {
  let created: Promise<void> | undefined;
  return () => {
    created ??= db
      .transaction(async (tx) => {
        await tx.query("SELECT pg_advisory_xact_lock($1)", [lockKey]);
        // statement by statement: a prepared statement holds one command
        for (const statement of statements) await tx.query(statement);
      })
      .catch((err: unknown) => {
        created = undefined;
        throw err;
      });
    return created;
  };
}
