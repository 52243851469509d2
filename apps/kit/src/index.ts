/**
 * @ndt/kit — the service kernel. Everything a service imports from kit comes through here
 * (test helpers live apart, in `@ndt/kit/testing`).
 */

export {
  ACCESS_TOKEN_ALG,
  ACCESS_TOKEN_ALGS,
  type AccessTokenAlg,
  importVerificationKeys,
  type KeySource,
  type PublicJwk,
  RemoteJwks,
  type RemoteJwksOptions,
  StaticKeySource,
  type VerificationKey,
  verificationKey,
} from "./auth/jwks.js";
export {
  type AuthPluginOptions,
  authPlugin,
  bearerToken,
  registerTokenAuth,
  TokenAuthConfig,
  type TokenAuthSettings,
} from "./auth/plugin.js";
export { SessionRevocations } from "./auth/revocation.js";
export { ed25519Backend, signatureValid } from "./auth/signature.js";
export {
  type AccessClaims,
  ROLES,
  type Role,
  TokenError,
  TokenVerifier,
  type VerifierOptions,
} from "./auth/verifier.js";
export { jitteredDelay, sleep } from "./backoff.js";
export type { Logger, WarnLogger } from "./logger.js";
export { ConfigError, csv, HttpConfig, loadConfig } from "./config.js";
export {
  badRequest,
  codeForStatus,
  conflict,
  ErrorEnvelope,
  envelope,
  forbidden,
  HttpError,
  notFound,
  tooManyRequests,
  unauthorized,
} from "./errors.js";
export { clientErrorHandler } from "./http/client-errors.js";
export type { Health, ReadinessCheck } from "./http/health.js";
export { type ListenSettings, type RunningService, type RunOptions, runService, startService } from "./http/run.js";
export { MULTIPART_FRAMING_BYTES } from "./http/multipart.js";
export { helmetHeaders } from "./http/security-headers.js";
export {
  createService,
  type HttpServiceSettings,
  httpServiceOptions,
  ErrorRef,
  LineText,
  MultiLineText,
  NonBlankText,
  errorResponses,
  type OpenApiDocument,
  type ServiceApp,
  type ServiceOptions,
  StrictObject,
} from "./http/service.js";
export { PgDatabase, PostgresConfig, type PostgresSettings, postgresConnection, postgresTls } from "./postgres/pg.js";
export {
  isUniqueViolation,
  PgErrorCode,
  type SqlDatabase,
  type SqlExecutor,
  type SqlResult,
  type SqlRow,
} from "./postgres/port.js";
export { consume, judge, type Limit, type LimitResult, limitKey } from "./ratelimit.js";
export type { CounterHit, KeyValueStore } from "./redis/port.js";
export { RedisConfig, type RedisSettings, RedisStore } from "./redis/redis.js";
export { AmqpConfig, AmqpQueue, type AmqpSettings, assertQuorumQueue, quorumQueueTopology } from "./queue/amqp.js";
export { openJobQueue, QueueConfig, QueueConfigSchema, type QueueSettings } from "./queue/open.js";
export type { Delivery, JobQueue, OutgoingMessage, QueueOptions, Subscription } from "./queue/port.js";
export { assertObjectKey, InvalidObjectKeyError, MAX_OBJECT_KEY_LENGTH, ObjectKeyPrefix } from "./objects/keys.js";
export {
  ObjectStoreConfig,
  ObjectStoreConfigSchema,
  type ObjectStoreSettings,
  openObjectStore,
} from "./objects/open.js";
export type { ObjectInfo, ObjectStore, PutOptions } from "./objects/port.js";
export { S3Config, S3ObjectStore, type S3Settings, s3Client } from "./objects/s3.js";
export { PgQueue, PgQueueConfig, type PgQueueSettings } from "./queue/postgres.js";
export { DirectoryObjectStore } from "./objects/directory.js";
export { CacheConfig, CacheConfigSchema, type CacheSettings, openKeyValueStore } from "./cache/open.js";
export { type PgKeyValueOptions, PgKeyValueStore } from "./cache/postgres.js";
