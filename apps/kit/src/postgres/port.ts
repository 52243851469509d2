/**
 * The SQL database port. Services depend on this interface, not on `pg`: the real adapter is `PgDatabase`
 * (PostgreSQL / Aurora); an embedded implementation for the local stack implements the same contract.
 */
export type SqlRow = Record<string, unknown>;

export interface SqlResult<R extends SqlRow> {
  rows: R[];
  rowCount: number;
}

/** Something that runs parameterised SQL: the database itself or an open transaction. */
export interface SqlExecutor {
  /** Always parameterised (`$1`, `$2`, ...): values are never spliced into the text. */
  query<R extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
}

export interface SqlDatabase extends SqlExecutor {
  /** Run `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Apply pending migrations from `dir` (idempotent, safe with concurrent replicas), recorded per service. */
  migrate(dir: string, table?: string): Promise<string[]>;
  /** Throws unless a trivial query succeeds (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Postgres error codes services map to HTTP answers. */
export const PgErrorCode = { uniqueViolation: "23505", foreignKeyViolation: "23503" } as const;

export function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === PgErrorCode.uniqueViolation;
}
