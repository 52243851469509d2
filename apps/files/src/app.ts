/**
 * Builds the files service: inspections, image uploads to object storage, the detection-job outbox and its relay,
 * image content and status events (CONTRACTS.md §3). `server.ts` listens; tests call `buildApp` and `app.inject()`.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import {
  authPlugin,
  createService,
  type KeyValueStore,
  PgDatabase,
  RedisStore,
  RemoteJwks,
  type ServiceApp,
  SessionRevocations,
  type SqlDatabase,
  TokenVerifier,
} from "@ndt/kit";
import type { FilesConfig } from "./config.js";
import { ImageStatusListener } from "./events.js";
import { OutboxRelay, type RelayOptions } from "./relay.js";
import { imageRoutes } from "./routes/images.js";
import { inspectionRoutes } from "./routes/inspections.js";
import { FilesStore } from "./store.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url));

export interface FilesDeps {
  config: FilesConfig;
  db: SqlDatabase;
  store: FilesStore;
  s3: S3Client;
  relay: OutboxRelay;
  events: ImageStatusListener;
}

export interface BuildOptions {
  config: FilesConfig;
  /** Use these instead of connecting from config (the caller then closes them). */
  db?: SqlDatabase;
  kv?: KeyValueStore;
  logStream?: NodeJS.WritableStream;
  /** Apply migrations while building. @default true */
  migrate?: boolean;
  /** Run the outbox relay in this process. @default true */
  relay?: boolean;
  /** Test hook of the relay (see `RelayOptions.beforePublish`). */
  beforePublish?: RelayOptions["beforePublish"];
}

export function s3Client(config: FilesConfig): S3Client {
  return new S3Client({
    region: config.S3_REGION,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    ...(config.S3_ENDPOINT ? { endpoint: config.S3_ENDPOINT } : {}),
    ...(config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY } }
      : {}),
    maxAttempts: 3,
    // S3-compatible servers (s3rver, MinIO) do not all take the SDK's default CRC trailers on every request
    ...(config.S3_ENDPOINT
      ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" }
      : {}),
  });
}

export async function buildApp(opts: BuildOptions): Promise<ServiceApp & { deps: FilesDeps }> {
  const { config } = opts;
  const app = await createService({
    name: "files",
    logLevel: config.LOG_LEVEL,
    ...(opts.logStream ? { logStream: opts.logStream } : {}),
    corsOrigins: config.CORS_ORIGINS,
    eventLoopResolutionMs: config.EVENT_LOOP_RESOLUTION_MS,
    bodyLimit: config.BODY_LIMIT_BYTES,
    openapi: { description: "Inspections and images" },
  });

  const db = opts.db ?? new PgDatabase(config, app.log);
  const kv = opts.kv ?? new RedisStore(config, app.log);
  if (!opts.db) app.addHook("onClose", () => db.close());
  if (!opts.kv) app.addHook("onClose", () => kv.close());
  if (opts.migrate ?? true) await db.migrate(MIGRATIONS_DIR);

  const s3 = s3Client(config);
  app.addHook("onClose", async () => s3.destroy());

  const relay = new OutboxRelay({
    db,
    amqpUrl: config.AMQP_URL,
    queue: config.DETECTIONS_QUEUE,
    deliveryLimit: config.DETECTIONS_DELIVERY_LIMIT,
    pollMs: config.OUTBOX_POLL_MS,
    batch: config.OUTBOX_BATCH,
    log: app.log,
    ...(opts.beforePublish ? { beforePublish: opts.beforePublish } : {}),
  });
  if (opts.relay ?? true) relay.start();
  // after the listener closed (in-flight uploads have committed their rows), before the pool closes
  app.addHook("onClose", () => relay.stop());

  const ssl =
    config.DATABASE_TLS === "disable"
      ? false
      : config.DATABASE_TLS === "require"
        ? { rejectUnauthorized: false }
        : {
            rejectUnauthorized: true,
            ...(config.DATABASE_CA_FILE ? { ca: readFileSync(config.DATABASE_CA_FILE, "utf8") } : {}),
          };
  const events = new ImageStatusListener(config.DATABASE_URL, ssl, app.log);
  await events.start();
  app.addHook("onClose", () => events.stop());

  const verifier = new TokenVerifier({
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    keys: new RemoteJwks(config.JWKS_URL),
  });
  await app.register(authPlugin, {
    verifier,
    revocations: new SessionRevocations(kv, config.ACCESS_TOKEN_TTL_SEC * 1000),
  });

  app.health.addCheck("postgres", () => db.ping());
  app.health.addCheck("redis", () => kv.ping());
  app.health.addCheck("s3", async () => {
    await s3.send(new HeadBucketCommand({ Bucket: config.S3_BUCKET }), { abortSignal: AbortSignal.timeout(2_000) });
  });

  const deps: FilesDeps = { config, db, store: new FilesStore(db), s3, relay, events };
  await inspectionRoutes(app, deps);
  // its own scope: the raw-image body parser and multipart apply to the image routes only
  await app.register(async (scope) => imageRoutes(scope as ServiceApp, deps));
  return Object.assign(app, { deps });
}
