/** Shared setup of the auth tests: a fresh database and Redis prefix per test file, and a built app. */
import type { TestDatabase, TestRedis } from "@ndt/kit/testing";
import { type AuthConfig, loadAuthConfig } from "../src/config.js";

export const SECRET = "test-signing-key-secret-0123456789abcdef";

export function authConfig(db: TestDatabase, kv: TestRedis, overrides: Record<string, string> = {}): AuthConfig {
  return loadAuthConfig({
    DATABASE_URL: db.url,
    REDIS_URL: kv.url,
    REDIS_KEY_PREFIX: kv.prefix,
    SIGNING_KEY_SECRET: SECRET,
    LOG_LEVEL: "silent",
    CORS_ORIGINS: "https://app.example.com",
    // at nice 19 the hashing thread gets ~1.5% of a core beside another test file's work: logins would take seconds
    ARGON2_NICE: "0",
    ...overrides,
  });
}

export const json = (body: unknown, headers: Record<string, string> = {}) => ({
  payload: JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers },
});

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
