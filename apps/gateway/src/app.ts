/**
 * Builds the gateway: the one public entry (CONTRACTS.md §3). Routes to auth, files and reports, verifies tokens locally,
 * rate limits, serves the merged OpenAPI document and its UI. `server.ts` listens.
 */
import {
  ConfigError,
  createService,
  httpServiceOptions,
  type KeyValueStore,
  openKeyValueStore,
  PgDatabase,
  RemoteJwks,
  type ServiceApp,
  TokenVerifier,
} from "@ndt/kit";
import type { GatewayConfig } from "./config.js";
import { OpenApiMerger } from "./openapi.js";
import { proxyRoutes } from "./proxy.js";

export interface BuildOptions {
  config: GatewayConfig;
  store?: KeyValueStore;
  logStream?: NodeJS.WritableStream;
}

const OPENAPI_PATH = "/api/v1/openapi.json";

/** What the gateway lets through without a token: the routes that obtain one, and the public keys. */
const PUBLIC_ROUTES = {
  routes: new Set(["POST /api/v1/auth/register", "POST /api/v1/auth/login", "POST /api/v1/auth/refresh"]),
  prefixes: ["/.well-known/"],
};

export async function buildApp(opts: BuildOptions): Promise<ServiceApp> {
  const { config } = opts;
  let merger: OpenApiMerger | undefined;
  const app = await createService({
    ...httpServiceOptions("gateway", config, opts.logStream),
    openapi: {
      description: "NDT inspection platform API, through the gateway",
      jsonPath: OPENAPI_PATH,
      transform: (doc) => merger?.merge(doc) ?? doc,
    },
  });
  merger = new OpenApiMerger(
    [config.AUTH_URL, config.FILES_URL, config.REPORTS_URL],
    config.OPENAPI_CACHE_SEC * 1000,
    (err, upstream) => app.log.warn({ err, upstream }, "upstream OpenAPI document unavailable"),
    PUBLIC_ROUTES,
  );
  app.addHook("onRequest", async (request) => {
    if (request.url === OPENAPI_PATH || request.url.startsWith("/docs/json")) await merger?.refreshIfStale();
  });

  // the local stack keeps the cache in its PostgreSQL; in the cloud it is ElastiCache and the gateway has no database
  let cacheDb: PgDatabase | undefined;
  if (config.CACHE_BACKEND === "postgres" && !opts.store) {
    const { DATABASE_URL } = config;
    if (!DATABASE_URL) {
      throw new ConfigError([{ variable: "DATABASE_URL", reason: "is required when CACHE_BACKEND=postgres" }]);
    }
    cacheDb = new PgDatabase({ ...config, DATABASE_URL }, app.log);
    // onClose hooks run in reverse: registered first, the pool closes after the store that uses it
    app.addHook("onClose", () => cacheDb?.close());
  }
  const store = opts.store ?? openKeyValueStore(config, { ...(cacheDb ? { db: cacheDb } : {}), log: app.log });
  if (!opts.store) app.addHook("onClose", () => store.close());

  const jwks = new RemoteJwks(config.JWKS_URL ?? `${config.AUTH_URL}/.well-known/jwks.json`, {
    ttlMs: config.JWKS_CACHE_TTL_SEC * 1000,
    minRefetchMs: config.JWKS_MIN_REFETCH_SEC * 1000,
  });
  jwks.refresh().catch((err) => app.log.warn({ err }, "initial JWKS fetch failed; retried on demand"));
  const verifier = new TokenVerifier({ issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, keys: jwks });

  app.health.addCheck("cache", () => store.ping());
  app.health.addCheck("jwks", async () => {
    if (jwks.fetches === 0 || !(await jwks.hasKeys())) await jwks.refresh();
  });

  const windowMs = config.RATE_LIMIT_WINDOW_SEC * 1000;
  await proxyRoutes(app, {
    upstreams: [
      { name: "auth", origin: config.AUTH_URL, patterns: ["/api/v1/auth/*", "/api/v1/org/*", "/.well-known/*"] },
      // an inspection's report is made by reports; the rest of /api/v1/inspections/* is files' (a parametric route
      // wins over the wildcard in Fastify's router, whatever the order; listed first for the reader)
      { name: "reports", origin: config.REPORTS_URL, patterns: ["/api/v1/inspections/:id/report"], methods: ["GET"] },
      { name: "files", origin: config.FILES_URL, patterns: ["/api/v1/inspections", "/api/v1/inspections/*"] },
    ],
    publicRoutes: PUBLIC_ROUTES.routes,
    publicPrefixes: PUBLIC_ROUTES.prefixes,
    verifier,
    store,
    ipLimit: { max: config.RATE_LIMIT_PER_IP, windowMs },
    userLimit: { max: config.RATE_LIMIT_PER_USER, windowMs },
    bodyLimit: config.BODY_LIMIT_BYTES,
    uploadLimit: { limit: config.UPLOAD_BODY_LIMIT_BYTES, match: /^\/api\/v1\/inspections\/[^/?]+\/images\/?(\?|$)/ },
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
    eventStreams: {
      idleTimeoutMs: config.EVENTS_IDLE_TIMEOUT_MS,
      match: /^\/api\/v1\/inspections\/[^/?]+\/events\/?(\?|$)/,
    },
    connectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
  });
  return app;
}
