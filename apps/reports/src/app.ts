/**
 * Builds the reports service: PDF reports of inspections (CONTRACTS.md §3), read from the database's read replica
 * when one is configured, images from the uploads bucket, rendered PDFs cached in the reports bucket by content
 * hash. `server.ts` listens; tests call `buildApp` and `app.inject()`.
 */
import {
  createService,
  httpServiceOptions,
  type KeyValueStore,
  type ObjectStore,
  openKeyValueStore,
  openObjectStore,
  PgDatabase,
  registerTokenAuth,
  type ServiceApp,
  type SqlDatabase,
} from "@ndt/kit";
import { Counter, Histogram } from "prom-client";
import type { ReportsConfig } from "./config.js";
import { ReportService } from "./reports.js";
import { reportRoutes } from "./routes/report.js";
import { ReportsStore } from "./store.js";

export interface ReportsDeps {
  config: ReportsConfig;
  /** The read replica when DATABASE_READER_URL is set, else the primary. */
  db: SqlDatabase;
  uploads: ObjectStore;
  reports: ObjectStore;
  service: ReportService;
}

export interface BuildOptions {
  config: ReportsConfig;
  /** Use these instead of connecting from config (the caller then closes them). */
  db?: SqlDatabase;
  kv?: KeyValueStore;
  logStream?: NodeJS.WritableStream;
}

/** The image count of a report as a metric label with few values. */
function imageBand(images: number): string {
  if (images <= 10) return "1-10";
  if (images <= 50) return "11-50";
  if (images <= 200) return "51-200";
  return "201+";
}

export async function buildApp(opts: BuildOptions): Promise<ServiceApp & { deps: ReportsDeps }> {
  const { config } = opts;
  const app = await createService({
    ...httpServiceOptions("reports", config, opts.logStream),
    openapi: { description: "PDF inspection reports" },
  });

  // Reads only (the schema is files'; the migrations Job applies it): the replica takes them when there is one.
  const readerUrl = config.DATABASE_READER_URL ?? config.DATABASE_URL;
  const db = opts.db ?? new PgDatabase({ ...config, DATABASE_URL: readerUrl }, app.log);
  // onClose hooks run in reverse order: adapters that use a pool close before it
  if (!opts.db) app.addHook("onClose", () => db.close());
  let kv = opts.kv;
  if (!kv) {
    // the embedded cache (CACHE_BACKEND=postgres) writes, so it needs the primary, never the replica
    const primary =
      config.CACHE_BACKEND === "postgres" && readerUrl !== config.DATABASE_URL ? new PgDatabase(config, app.log) : db;
    if (primary !== db) app.addHook("onClose", () => primary.close());
    const store = openKeyValueStore(config, { db: primary, log: app.log });
    app.addHook("onClose", () => store.close());
    kv = store;
  }

  const uploads = openObjectStore(config, { bucket: config.S3_BUCKET_UPLOADS, prefix: config.S3_PREFIX_UPLOADS });
  const reportsBucket = openObjectStore(config, { bucket: config.S3_BUCKET_REPORTS, prefix: config.S3_PREFIX_REPORTS });
  app.addHook("onClose", () => uploads.close());
  app.addHook("onClose", () => reportsBucket.close());

  await registerTokenAuth(app, config, kv);

  app.health.addCheck("postgres", () => db.ping());
  app.health.addCheck("cache", () => kv.ping());
  app.health.addCheck("uploads", () => uploads.ping());
  app.health.addCheck("reports", () => reportsBucket.ping());

  const served = new Counter({
    name: "ndt_reports_served_total",
    help: "Reports answered, by whether the PDF came from the reports bucket (hit) or was rendered (miss)",
    labelNames: ["cache"] as const,
    registers: [app.metrics],
  });
  const renderSeconds = new Histogram({
    name: "ndt_reports_render_seconds",
    help: "Time to render a report and store it in the reports bucket, by the report's number of images",
    labelNames: ["images"] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [app.metrics],
  });
  const service = new ReportService({
    store: new ReportsStore(db),
    uploads,
    reports: reportsBucket,
    prefix: config.S3_PREFIX_REPORTS,
    settings: { maxImagePixels: config.REPORT_IMAGE_MAX_PX, jpegQuality: config.REPORT_JPEG_QUALITY },
    maxConcurrentRenders: config.REPORT_MAX_CONCURRENT_RENDERS,
    onServed: (cache) => served.inc({ cache }),
    // a bounded label: the image count in bands, not the count itself
    onRendered: (seconds, images) => renderSeconds.observe({ images: imageBand(images) }, seconds),
  });
  await reportRoutes(app, service);
  return Object.assign(app, { deps: { config, db, uploads, reports: reportsBucket, service } });
}
