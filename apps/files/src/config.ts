import {
  CacheConfig,
  HttpConfig,
  loadConfig,
  ObjectKeyPrefix,
  ObjectStoreConfig,
  PostgresConfig,
  QueueConfig,
  TokenAuthConfig,
} from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

// one bucket, named the way the platform wires buckets (S3_BUCKET_<NAME>, S3_PREFIX_<NAME>): not S3_BUCKET
const { S3_BUCKET: _singleBucket, ...objectStoreConfig } = ObjectStoreConfig;

export const FilesConfigSchema = Type.Object({
  ...HttpConfig,
  ...PostgresConfig,
  /** Sessions' revocations: Redis (CACHE_BACKEND=redis) or the embedded store in PostgreSQL. */
  ...CacheConfig,
  /** Detection jobs: RabbitMQ (QUEUE_BACKEND=amqp) or the embedded queue in PostgreSQL. */
  ...QueueConfig,
  /** Images: S3 (OBJECT_STORE=s3, S3_* variables) or a directory (OBJECT_STORE_DIR). */
  ...objectStoreConfig,
  ...TokenAuthConfig,
  /** The uploads bucket (its folder under OBJECT_STORE_DIR on the directory store). */
  S3_BUCKET_UPLOADS: Type.String({ minLength: 3 }),
  S3_PREFIX_UPLOADS: ObjectKeyPrefix("key prefix inside the bucket: the service's IAM grant covers only this prefix"),
  /**
   * Largest accepted image, bytes (enforced while streaming). The gateway's UPLOAD_BODY_LIMIT_BYTES must be the same,
   * and the detector's MAX_IMAGE_BYTES at least this.
   */
  UPLOAD_MAX_BYTES: Type.Integer({ minimum: 1, default: 50 * 1024 * 1024 }),
  /** Quorum queue of detection jobs; its dead-letter queue is `<name>.dlq`. */
  DETECTIONS_QUEUE: Type.String({ minLength: 1, default: "detections" }),
  /** Deliveries of one job before it is dead-lettered. */
  DETECTIONS_DELIVERY_LIMIT: Type.Integer({ minimum: 1, default: 5 }),
  /** The relay re-reads unsent outbox rows this often (it is also woken by every upload). */
  OUTBOX_POLL_MS: Type.Integer({ minimum: 10, default: 1_000 }),
  OUTBOX_BATCH: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  /**
   * An event stream's heartbeat: keeps idle proxies from closing it, and is when the stream re-checks its token (a
   * logout or a revoked session ends it by the next heartbeat).
   */
  EVENT_STREAM_HEARTBEAT_MS: Type.Integer({ minimum: 100, default: 15_000 }),
});
export type FilesConfig = Static<typeof FilesConfigSchema>;

export function loadFilesConfig(env: Record<string, string | undefined> = process.env): FilesConfig {
  return loadConfig(FilesConfigSchema, env);
}
