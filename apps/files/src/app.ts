/**
 * Builds the files service: inspections, image uploads to object storage, the detection-job outbox and its relay,
 * image content and status events (CONTRACTS.md §3). `server.ts` listens; tests call `buildApp` and `app.inject()`.
 */
import { fileURLToPath } from "node:url";
import {
  createService,
  httpServiceOptions,
  type JobQueue,
  type KeyValueStore,
  type ObjectStore,
  openJobQueue,
  openKeyValueStore,
  openObjectStore,
  PgDatabase,
  postgresConnection,
  registerTokenAuth,
  type ServiceApp,
  type SqlDatabase,
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
  objects: ObjectStore;
  relay: OutboxRelay;
  events: ImageStatusListener;
}

export interface BuildOptions {
  config: FilesConfig;
  /** Use these instead of connecting from config (the caller then closes them). */
  db?: SqlDatabase;
  kv?: KeyValueStore;
  queue?: JobQueue;
  objects?: ObjectStore;
  logStream?: NodeJS.WritableStream;
  /** Apply migrations while building. @default true */
  migrate?: boolean;
  /** Run the outbox relay in this process. @default true */
  relay?: boolean;
  /** Test hook of the relay (see `RelayOptions.beforePublish`). */
  beforePublish?: RelayOptions["beforePublish"];
}

export async function buildApp(opts: BuildOptions): Promise<ServiceApp & { deps: FilesDeps }> {
  const { config } = opts;
  const app = await createService({
    ...httpServiceOptions("files", config, opts.logStream),
    openapi: { description: "Inspections and images" },
  });

  const db = opts.db ?? new PgDatabase(config, app.log);
  // onClose hooks run in reverse order: adapters that use the pool close before it
  if (!opts.db) app.addHook("onClose", () => db.close());
  const kv = opts.kv ?? openKeyValueStore(config, { db, log: app.log });
  if (!opts.kv) app.addHook("onClose", () => kv.close());
  if (opts.migrate ?? true) await db.migrate(MIGRATIONS_DIR);

  const objects =
    opts.objects ?? openObjectStore(config, { bucket: config.S3_BUCKET_UPLOADS, prefix: config.S3_PREFIX_UPLOADS });
  if (!opts.objects) app.addHook("onClose", () => objects.close());
  const queue = opts.queue ?? openJobQueue(config, { db, log: app.log });
  if (!opts.queue) app.addHook("onClose", () => queue.close());

  const relay = new OutboxRelay({
    db,
    queue,
    queueName: config.DETECTIONS_QUEUE,
    deliveryLimit: config.DETECTIONS_DELIVERY_LIMIT,
    pollMs: config.OUTBOX_POLL_MS,
    batch: config.OUTBOX_BATCH,
    log: app.log,
    ...(opts.beforePublish ? { beforePublish: opts.beforePublish } : {}),
  });
  if (opts.relay ?? true) relay.start();
  // after the listener closed (in-flight uploads have committed their rows), before the pool closes
  app.addHook("onClose", () => relay.stop());

  const events = new ImageStatusListener(postgresConnection(config), app.log);
  await events.start();
  app.addHook("onClose", () => events.stop());

  await registerTokenAuth(app, config, kv);

  app.health.addCheck("postgres", () => db.ping());
  app.health.addCheck("cache", () => kv.ping());
  app.health.addCheck("queue", () => queue.ping());
  app.health.addCheck("objects", () => objects.ping());

  const deps: FilesDeps = { config, db, store: new FilesStore(db), objects, relay, events };
  await inspectionRoutes(app, deps);
  // its own scope: the raw-image body parser and multipart apply to the image routes only
  await app.register(async (scope) => imageRoutes(scope as ServiceApp, deps));
  return Object.assign(app, { deps });
}
