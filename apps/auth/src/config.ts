import { CacheConfig, HttpConfig, loadConfig, PostgresConfig } from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

export const AuthConfigSchema = Type.Object({
  ...HttpConfig,
  ...PostgresConfig,
  ...CacheConfig,
  JWT_ISSUER: Type.String({ minLength: 1, default: "ndt-auth" }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: "ndt-api" }),
  ACCESS_TOKEN_TTL_SEC: Type.Integer({ minimum: 60, maximum: 3600, default: 900 }),
  REFRESH_TOKEN_TTL_SEC: Type.Integer({ minimum: 3600, default: 30 * 24 * 3600 }),
  /** Secret that encrypts the private signing keys at rest (≥ 32 characters, from Secrets Manager). */
  SIGNING_KEY_SECRET: Type.String({ minLength: 32 }),
  /** A new signing key is activated this often. */
  KEY_ROTATION_DAYS: Type.Number({ exclusiveMinimum: 0, default: 30 }),
  /** A new key is published this long before it signs anything (> every verifier's JWKS cache TTL). */
  KEY_PUBLISH_LEAD_SEC: Type.Integer({ minimum: 0, default: 3600 }),
  /** Failed logins per account per window before 429. */
  LOGIN_MAX_FAILURES_PER_ACCOUNT: Type.Integer({ minimum: 1, default: 5 }),
  /** Failed logins per client IP per window before 429. */
  LOGIN_MAX_FAILURES_PER_IP: Type.Integer({ minimum: 1, default: 50 }),
  LOGIN_THROTTLE_WINDOW_SEC: Type.Integer({ minimum: 1, default: 900 }),
  /**
   * Registrations per client IP per window before 429. Every attempt counts, whatever its outcome: each costs a hash
   * and may answer `email_taken`. An office behind one NAT address registers its organisation once and adds its
   * people as members (not counted here).
   */
  REGISTER_MAX_PER_IP: Type.Integer({ minimum: 1, default: 10 }),
  REGISTER_THROTTLE_WINDOW_SEC: Type.Integer({ minimum: 1, default: 3600 }),
  /**
   * `email_taken` answers per organisation per window when adding members; past them, adding members answers 429
   * until the window ends. Per organisation, not per admin: an admin can add admins, each with a budget of its own.
   * New emails do not count (bulk onboarding is not limited here).
   */
  MEMBER_MAX_TAKEN_EMAILS_PER_ORG: Type.Integer({ minimum: 1, default: 10 }),
  MEMBER_THROTTLE_WINDOW_SEC: Type.Integer({ minimum: 1, default: 900 }),
  /** argon2id parameters (OWASP minimum: m=19456 KiB, t=2, p=1). */
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 19456, default: 19456 }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 2, default: 2 }),
  /** Hashes computed at once (each on a libuv worker thread); the rest queue. @default cores - 1, at least 1 */
  ARGON2_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1 })),
  /**
   * Niceness of the hashing threads: 19 lets the event loop's thread be scheduled first on busy cores (P99 delay
   * while logins run). Lower it where something else at normal priority must not starve logins (a shared CI runner).
   */
  ARGON2_NICE: Type.Integer({ minimum: 0, maximum: 19, default: 19 }),
});
export type AuthConfig = Static<typeof AuthConfigSchema>;

export function loadAuthConfig(env: Record<string, string | undefined> = process.env): AuthConfig {
  return loadConfig(AuthConfigSchema, env);
}
