/**
 * Builds the auth service: organisations, users, login, refresh rotation, logout, JWKS (CONTRACTS.md §3).
 * `server.ts` listens; tests call `buildApp` and use `app.inject()`.
 */
import { fileURLToPath } from "node:url";
import {
  authPlugin,
  createService,
  httpServiceOptions,
  type KeyValueStore,
  openKeyValueStore,
  PgDatabase,
  type ServiceApp,
  SessionRevocations,
  type SqlDatabase,
  StaticKeySource,
  TokenVerifier,
} from "@ndt/kit";
import type { AuthConfig } from "./config.js";
import { KeyRing } from "./keys.js";
import { PasswordHasher } from "./passwords.js";
import { authRoutes } from "./routes/auth.js";
import { jwksRoutes } from "./routes/jwks.js";
import { orgRoutes } from "./routes/org.js";
import { SessionStore } from "./sessions.js";
import { LoginThrottle, MemberThrottle, RegistrationThrottle } from "./throttle.js";
import { TokenIssuer } from "./tokens.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url));

export interface AuthDeps {
  db: SqlDatabase;
  store: KeyValueStore;
  ring: KeyRing;
  passwords: PasswordHasher;
  sessions: SessionStore;
  tokens: TokenIssuer;
  loginThrottle: LoginThrottle;
  registrationThrottle: RegistrationThrottle;
  memberThrottle: MemberThrottle;
}

export interface BuildOptions {
  config: AuthConfig;
  /** Use these instead of connecting from config (the caller then closes them). */
  db?: SqlDatabase;
  store?: KeyValueStore;
  logStream?: NodeJS.WritableStream;
  /** Clock of the key ring and token issuer (tests of rotation). */
  now?: () => number;
  /** Apply migrations while building. @default true */
  migrate?: boolean;
}

export async function buildApp(opts: BuildOptions): Promise<ServiceApp> {
  const { config } = opts;
  const app = await createService({
    ...httpServiceOptions("auth", config, opts.logStream),
    openapi: { description: "Organisations, users, sessions and signing keys" },
  });

  const db = opts.db ?? new PgDatabase(config, app.log);
  const store = opts.store ?? openKeyValueStore(config, { db, log: app.log });
  if (!opts.db) app.addHook("onClose", () => db.close());
  if (!opts.store) app.addHook("onClose", () => store.close());

  if (opts.migrate ?? true) await db.migrate(MIGRATIONS_DIR);
  const accessTtlMs = config.ACCESS_TOKEN_TTL_SEC * 1000;
  const ring = new KeyRing(db, {
    secret: config.SIGNING_KEY_SECRET,
    rotationMs: config.KEY_ROTATION_DAYS * 86_400_000,
    leadMs: config.KEY_PUBLISH_LEAD_SEC * 1000,
    accessTtlMs,
    ...(opts.now ? { now: opts.now } : {}),
  });
  await ring.sync();
  ring.start(60_000, (err) => app.log.error({ err }, "key ring sync failed"));
  app.addHook("onClose", async () => ring.stop());

  const revocations = new SessionRevocations(store, accessTtlMs);
  const deps: AuthDeps = {
    db,
    store,
    ring,
    passwords: new PasswordHasher({
      memoryKiB: config.ARGON2_MEMORY_KIB,
      timeCost: config.ARGON2_TIME_COST,
      ...(config.ARGON2_CONCURRENCY ? { concurrency: config.ARGON2_CONCURRENCY } : {}),
      nice: config.ARGON2_NICE,
    }),
    sessions: new SessionStore(store, revocations, config.REFRESH_TOKEN_TTL_SEC * 1000),
    tokens: new TokenIssuer(ring, {
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      ttlSec: config.ACCESS_TOKEN_TTL_SEC,
    }),
    loginThrottle: new LoginThrottle(store, {
      maxPerAccount: config.LOGIN_MAX_FAILURES_PER_ACCOUNT,
      maxPerIp: config.LOGIN_MAX_FAILURES_PER_IP,
      windowMs: config.LOGIN_THROTTLE_WINDOW_SEC * 1000,
    }),
    registrationThrottle: new RegistrationThrottle(store, {
      maxPerIp: config.REGISTER_MAX_PER_IP,
      windowMs: config.REGISTER_THROTTLE_WINDOW_SEC * 1000,
    }),
    memberThrottle: new MemberThrottle(store, {
      maxTakenPerOrganization: config.MEMBER_MAX_TAKEN_EMAILS_PER_ORG,
      windowMs: config.MEMBER_THROTTLE_WINDOW_SEC * 1000,
    }),
  };

  app.addHook("onClose", () => deps.passwords.close());

  const verifier = new TokenVerifier({
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    keys: new StaticKeySource(() => ring.verificationKeys()),
  });
  await app.register(authPlugin, { verifier, revocations });

  app.health.addCheck("postgres", () => db.ping());
  app.health.addCheck("cache", () => store.ping());

  await authRoutes(app, deps);
  await orgRoutes(app, deps);
  await jwksRoutes(app, deps);
  return app;
}
