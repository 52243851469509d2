import { CacheConfig, HttpConfig, loadConfig, PostgresConfig } from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

const Url = (description: string) => Type.String({ pattern: "^https?://[^/]+$", description });

export const GatewayConfigSchema = Type.Object({
  ...HttpConfig,
  ...CacheConfig,
  /** Only with CACHE_BACKEND=postgres (the local stack): the database that holds the cache. */
  ...PostgresConfig,
  DATABASE_URL: Type.Optional(PostgresConfig.DATABASE_URL),
  /** Upstream origins (no path). */
  AUTH_URL: Url("auth service origin, e.g. http://auth:8080"),
  FILES_URL: Url("files service origin, e.g. http://files:8080"),
  REPORTS_URL: Url("reports service origin, e.g. http://reports:8083"),
  /** Where the public keys come from. @default `${AUTH_URL}/.well-known/jwks.json` */
  JWKS_URL: Type.Optional(Type.String({ pattern: "^https?://" })),
  JWKS_CACHE_TTL_SEC: Type.Integer({ minimum: 1, default: 300 }),
  /** At most one JWKS fetch per this many seconds because of unknown kids. */
  JWKS_MIN_REFETCH_SEC: Type.Integer({ minimum: 0, default: 10 }),
  JWT_ISSUER: Type.String({ minLength: 1, default: "ndt-auth" }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: "ndt-api" }),
  /** An upstream must send its response headers (and then each body chunk) within this. */
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 15_000 }),
  UPSTREAM_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 2_000 }),
  /** An inspection's event stream may be silent this long between chunks (files sends a heartbeat every 15 s). */
  EVENTS_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 60_000 }),
  /**
   * Image uploads (streamed through, not buffered): the file's size limit, set alike here and at files
   * (UPLOAD_MAX_BYTES); a lower one here refuses images files would take, a higher one lets files refuse them.
   */
  UPLOAD_BODY_LIMIT_BYTES: Type.Integer({ minimum: 1, default: 50 * 1024 * 1024 }),
  RATE_LIMIT_WINDOW_SEC: Type.Integer({ minimum: 1, default: 60 }),
  RATE_LIMIT_PER_IP: Type.Integer({ minimum: 1, default: 1200 }),
  RATE_LIMIT_PER_USER: Type.Integer({ minimum: 1, default: 1200 }),
  /** Upstream OpenAPI documents are refetched when older than this. */
  OPENAPI_CACHE_SEC: Type.Integer({ minimum: 0, default: 60 }),
});
export type GatewayConfig = Static<typeof GatewayConfigSchema>;

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig(GatewayConfigSchema, env);
}
