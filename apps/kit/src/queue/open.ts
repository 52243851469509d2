/**
 * How every service picks its job-queue adapter: `QUEUE_BACKEND=amqp` (RabbitMQ / Amazon MQ, the default) or
 * `postgres` (the local stack's embedded queue in the service's own database).
 */
import { type Static, Type } from "@sinclair/typebox";
import { ConfigError } from "../config.js";
import type { SqlDatabase } from "../postgres/port.js";
import { AmqpConfig, AmqpQueue } from "./amqp.js";
import type { JobQueue } from "./port.js";

export const QueueConfig = {
  QUEUE_BACKEND: Type.Union([Type.Literal("amqp"), Type.Literal("postgres")], { default: "amqp" }),
  ...AmqpConfig,
};
export const QueueConfigSchema = Type.Object(QueueConfig);
export type QueueSettings = Static<typeof QueueConfigSchema>;

type Logger = { warn(obj: object, msg?: string): void };

export function openJobQueue(config: QueueSettings, deps: { db?: SqlDatabase; log?: Logger } = {}): JobQueue {
  if (config.QUEUE_BACKEND === "amqp") return new AmqpQueue(config, deps.log);
  throw new ConfigError([{ variable: "QUEUE_BACKEND", reason: "the postgres queue is not available yet" }]);
}
