/**
 * How every service picks its job-queue adapter: `QUEUE_BACKEND=amqp` (RabbitMQ / Amazon MQ, the default) or
 * `postgres` (the local stack's embedded queue, in the service's own database: pass its `PgDatabase`).
 */
import { type Static, Type } from "@sinclair/typebox";
import { ConfigError } from "../config.js";
import { PgDatabase } from "../postgres/pg.js";
import type { SqlDatabase } from "../postgres/port.js";
import { AmqpConfig, AmqpQueue } from "./amqp.js";
import type { JobQueue } from "./port.js";
import { PgQueue, PgQueueConfig } from "./postgres.js";
import type { WarnLogger } from "../logger.js";

export const QueueConfig = {
  QUEUE_BACKEND: Type.Union([Type.Literal("amqp"), Type.Literal("postgres")], { default: "amqp" }),
  ...AmqpConfig,
  ...PgQueueConfig,
};
export const QueueConfigSchema = Type.Object(QueueConfig);
export type QueueSettings = Static<typeof QueueConfigSchema>;

/** The adapter `config` names. The caller closes it (the postgres queue leaves `db` open: the caller owns it). */
export function openJobQueue(config: QueueSettings, deps: { db?: SqlDatabase; log?: WarnLogger } = {}): JobQueue {
  if (config.QUEUE_BACKEND === "amqp") return new AmqpQueue(config, deps.log);
  if (!(deps.db instanceof PgDatabase)) {
    throw new ConfigError([
      { variable: "QUEUE_BACKEND", reason: "postgres needs the service's PostgreSQL database (a PgDatabase)" },
    ]);
  }
  return new PgQueue(deps.db, config, deps.log);
}
