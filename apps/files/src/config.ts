import { HttpConfig, loadConfig, PostgresConfig, RedisConfig } from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

export const FilesConfigSchema = Type.Object({
  ...HttpConfig,
  ...PostgresConfig,
  ...RedisConfig,
  JWT_ISSUER: Type.String({ minLength: 1, default: "ndt-auth" }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: "ndt-api" }),
  /** auth's public keys (`/.well-known/jwks.json`); tokens are verified here, not trusted from the gateway. */
  JWKS_URL: Type.String({ pattern: "^https?://" }),
  /** Longest access-token life: how long a session revocation is remembered. */
  ACCESS_TOKEN_TTL_SEC: Type.Integer({ minimum: 60, maximum: 3600, default: 900 }),
  /** S3-compatible endpoint (s3rver, MinIO); unset = AWS S3 of S3_REGION. */
  S3_ENDPOINT: Type.Optional(Type.String({ pattern: "^https?://" })),
  S3_REGION: Type.String({ default: "us-east-1" }),
  S3_BUCKET: Type.String({ minLength: 3 }),
  /** Static credentials (local stacks); unset = the default chain (IRSA in the cluster). */
  S3_ACCESS_KEY_ID: Type.Optional(Type.String()),
  S3_SECRET_ACCESS_KEY: Type.Optional(Type.String()),
  S3_FORCE_PATH_STYLE: Type.Boolean({ default: false }),
  /** Largest accepted image, bytes (enforced while streaming). */
  UPLOAD_MAX_BYTES: Type.Integer({ minimum: 1, default: 50 * 1024 * 1024 }),
  /** Multipart part size (S3 minimum 5 MiB); memory per upload ≈ part size × queue size. */
  UPLOAD_PART_BYTES: Type.Integer({ minimum: 5 * 1024 * 1024, default: 5 * 1024 * 1024 }),
  UPLOAD_QUEUE_SIZE: Type.Integer({ minimum: 1, default: 2 }),
  AMQP_URL: Type.String({ pattern: "^amqps?://", default: "amqp://guest:guest@127.0.0.1:5672" }),
  /** Quorum queue of detection jobs; its dead-letter queue is `<name>.dlq`. */
  DETECTIONS_QUEUE: Type.String({ minLength: 1, default: "detections" }),
  /** Deliveries of one job before it is dead-lettered. */
  DETECTIONS_DELIVERY_LIMIT: Type.Integer({ minimum: 1, default: 5 }),
  /** The relay re-reads unsent outbox rows this often (it is also woken by every upload). */
  OUTBOX_POLL_MS: Type.Integer({ minimum: 10, default: 1_000 }),
  OUTBOX_BATCH: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
});
export type FilesConfig = Static<typeof FilesConfigSchema>;

export function loadFilesConfig(env: Record<string, string | undefined> = process.env): FilesConfig {
  return loadConfig(FilesConfigSchema, env);
}
