import {
  CacheConfig,
  HttpConfig,
  loadConfig,
  ObjectKeyPrefix,
  ObjectStoreConfig,
  PostgresConfig,
  TokenAuthConfig,
} from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

// this service names its two buckets itself (below); the single-bucket variable would only mislead
const { S3_BUCKET: _singleBucket, ...objectStoreConfig } = ObjectStoreConfig;

export const ReportsConfigSchema = Type.Object({
  ...HttpConfig,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8083 }),
  ...PostgresConfig,
  /** Aurora's reader endpoint: when set, every read goes there and the writer (DATABASE_URL) is left alone. */
  DATABASE_READER_URL: Type.Optional(Type.String({ pattern: "^postgres(ql)?://" })),
  /** Session revocations: Redis (REDIS_URL), or the local stack's embedded store in PostgreSQL (the primary). */
  ...CacheConfig,
  ...TokenAuthConfig,
  ...objectStoreConfig,
  /** Bucket of the uploaded images (read only). The cluster sets the real name; the default is the local stack's
   * folder under OBJECT_STORE_DIR. */
  S3_BUCKET_UPLOADS: Type.String({ minLength: 3, default: "uploads" }),
  S3_PREFIX_UPLOADS: ObjectKeyPrefix("key prefix of the uploads this service's grant covers (readiness lists there)"),
  /** Bucket the rendered PDFs are cached in. */
  S3_BUCKET_REPORTS: Type.String({ minLength: 3, default: "reports" }),
  /** Key prefix of the cached PDFs (the service's grant on the reports bucket covers this prefix only). */
  S3_PREFIX_REPORTS: Type.String({ pattern: "^([a-z0-9-]+/)+$", default: "reports/" }),
  /** Longest side, in pixels, of an image embedded in a report. */
  REPORT_IMAGE_MAX_PX: Type.Integer({ minimum: 256, maximum: 8192, default: 1600 }),
  /** JPEG quality of the embedded images. */
  REPORT_JPEG_QUALITY: Type.Integer({ minimum: 30, maximum: 100, default: 85 }),
  /** Renders at once per process; more wait (each holds one decoded image: memory is bounded by this). */
  REPORT_MAX_CONCURRENT_RENDERS: Type.Integer({ minimum: 1, maximum: 16, default: 2 }),
});
export type ReportsConfig = Static<typeof ReportsConfigSchema>;

export function loadReportsConfig(env: Record<string, string | undefined> = process.env): ReportsConfig {
  return loadConfig(ReportsConfigSchema, env);
}
