/**
 * RabbitMQ / Amazon MQ adapter of the `JobQueue` port (amqplib).
 *
 * - topology: a quorum queue `<q>` with `x-delivery-limit`, whose rejected and over-limit messages go through the
 *   direct exchange `<q>.dlx` to the quorum queue `<q>.dlq` (the arguments the files service has always declared,
 *   so queues made before this adapter stay compatible: RabbitMQ refuses a re-declaration with other arguments);
 * - publishing: persistent messages on a confirm channel, messageId = the job id, a timestamp; `publish` resolves
 *   once the broker confirmed every message, and honours the channel's write backpressure;
 * - consuming: one channel per consumer with its own prefetch; `deliveries` comes from the quorum queue's
 *   `x-delivery-count` header, plus, on a copy that `release` put back, the deliveries the original had spent
 *   (`x-ndt-spent-deliveries`, which the broker does not know: the adapter applies the queue's delivery limit to
 *   them itself); `retry` = nack with requeue, `deadLetter` = nack without requeue;
 * - failures: heartbeats notice a dead peer; a lost connection or channel is re-opened with jittered backoff and
 *   every consumer resumes by itself (the broker has already returned its unsettled deliveries to the queue).
 */
import { type Static, Type } from "@sinclair/typebox";
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { jitteredDelay } from "../backoff.js";
import { checkPrefetch, handOver } from "./consuming.js";
import type { Delivery, JobQueue, OutgoingMessage, QueueOptions, Subscription } from "./port.js";
import type { WarnLogger } from "../logger.js";

export const AmqpConfig = {
  AMQP_URL: Type.String({
    pattern: "^amqps?://",
    default: "amqp://guest:guest@127.0.0.1:5672",
    description: "amqps://host:5671 (Amazon MQ); credentials in the URL or in AMQP_USERNAME/AMQP_PASSWORD",
  }),
  AMQP_USERNAME: Type.Optional(Type.String({ description: "overrides the URL's user (Amazon MQ secret)" })),
  AMQP_PASSWORD: Type.Optional(Type.String()),
  /** Heartbeat period: a dead peer is noticed after about two missed beats instead of the OS's TCP timeout. */
  AMQP_HEARTBEAT_SEC: Type.Integer({ minimum: 1, default: 15 }),
  AMQP_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 5_000 }),
};
export const AmqpConfigSchema = Type.Object(AmqpConfig);
export type AmqpSettings = Static<typeof AmqpConfigSchema>;

/** The names and arguments of a job queue's topology; every service that declares `<queue>` uses exactly these. */
export function quorumQueueTopology(queue: string, deliveryLimit: number) {
  const dlx = `${queue}.dlx`;
  const dlq = `${queue}.dlq`;
  return {
    queue,
    dlx,
    dlq,
    queueArguments: {
      "x-queue-type": "quorum",
      "x-delivery-limit": deliveryLimit,
      "x-dead-letter-exchange": dlx,
      "x-dead-letter-routing-key": dlq,
    },
    dlqArguments: { "x-queue-type": "quorum" },
  };
}

/** Declare the queue, its dead-letter exchange and queue on `ch` (idempotent with the same arguments). */
export async function assertQuorumQueue(ch: Channel, queue: string, deliveryLimit: number) {
  const t = quorumQueueTopology(queue, deliveryLimit);
  await ch.assertExchange(t.dlx, "direct", { durable: true });
  await ch.assertQueue(t.dlq, { durable: true, arguments: t.dlqArguments });
  await ch.bindQueue(t.dlq, t.dlx, t.dlq);
  await ch.assertQueue(t.queue, { durable: true, arguments: t.queueArguments });
  return t;
}

/** Header carrying the publish time in milliseconds (the AMQP `timestamp` property only has seconds). */
const PUBLISHED_AT_HEADER = "x-published-at-ms";
/** How long `release` waits for its copy's confirm before leaving the delivery to return (counted) instead. */
const RELEASE_CONFIRM_MS = 5_000;
/** On a copy published by `release`: the deliveries the original had spent before the one released. */
const SPENT_DELIVERIES_HEADER = "x-ndt-spent-deliveries";

/** A message as published: a fresh one, or the copy `release` puts back (its history carried in headers). */
type Publishing = OutgoingMessage & { publishedAt?: number; spentDeliveries?: number };

export class AmqpQueue implements JobQueue {
  private connection: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private publisher: Promise<ConfirmChannel> | undefined;
  private readonly consumers = new Set<AmqpConsumer>();
  /** Delivery limits of the queues this adapter declared (a released copy's spent deliveries count against them). */
  readonly deliveryLimits = new Map<string, number>();
  private closed = false;
  private readonly url: string;

  constructor(
    private readonly settings: AmqpSettings,
    readonly log?: WarnLogger,
  ) {
    const url = new URL(settings.AMQP_URL);
    if (settings.AMQP_USERNAME) url.username = encodeURIComponent(settings.AMQP_USERNAME);
    if (settings.AMQP_PASSWORD) url.password = encodeURIComponent(settings.AMQP_PASSWORD);
    if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(settings.AMQP_HEARTBEAT_SEC));
    this.url = url.toString();
  }

  /** The open connection, opening one when there is none (concurrent callers share the attempt). */
  async connect(): Promise<ChannelModel> {
    if (this.closed) throw new Error("the job queue is closed");
    if (this.connection) return this.connection;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<ChannelModel> {
    const connection = await amqp.connect(this.url, { timeout: this.settings.AMQP_CONNECT_TIMEOUT_MS });
    connection.on("error", (err) => this.log?.warn({ err }, "amqp connection error"));
    connection.on("close", () => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.publisher = undefined;
    });
    if (this.closed) {
      await connection.close().catch(() => undefined);
      throw new Error("the job queue is closed");
    }
    this.connection = connection;
    return connection;
  }

  /** A short-lived channel for one operation: a failed declaration or check closes its channel, not ours. */
  private async withChannel<T>(fn: (ch: Channel) => Promise<T>): Promise<T> {
    const connection = await this.connect();
    const ch = await connection.createChannel();
    ch.on("error", () => undefined); // the rejected operation reports it
    try {
      return await fn(ch);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async declare(queue: string, opts: QueueOptions): Promise<void> {
    await this.withChannel((ch) => assertQuorumQueue(ch, queue, opts.deliveryLimit));
    this.deliveryLimits.set(queue, opts.deliveryLimit);
  }

  private confirmChannel(): Promise<ConfirmChannel> {
    if (!this.publisher) {
      const opening = (async () => {
        const connection = await this.connect();
        const ch = await connection.createConfirmChannel();
        ch.on("error", (err) => this.log?.warn({ err }, "amqp publish channel error"));
        ch.on("close", () => {
          if (this.publisher === opening) this.publisher = undefined;
        });
        return ch;
      })();
      this.publisher = opening;
      opening.catch(() => {
        if (this.publisher === opening) this.publisher = undefined;
      });
    }
    return this.publisher;
  }

  async publish(queue: string, messages: readonly Publishing[]): Promise<void> {
    if (messages.length === 0) return;
    const ch = await this.confirmChannel();
    const confirms: Promise<void>[] = [];
    const now = Date.now();
    // `mandatory`: a message no queue takes comes back (before its confirm) instead of vanishing with a confirm
    const ids = new Set(messages.map((m) => m.id));
    const returned = new Set<string>();
    const onReturn = (msg: ConsumeMessage) => {
      const id = String(msg.properties.messageId);
      if (msg.fields.routingKey === queue && ids.has(id)) returned.add(id);
    };
    ch.on("return", onReturn);
    try {
      await this.publishAll(ch, queue, messages, now, confirms);
      await Promise.all(confirms);
    } finally {
      ch.off("return", onReturn);
    }
    if (returned.size > 0) {
      throw new Error(`queue ${queue} does not exist: ${returned.size} message(s) were returned unrouted`);
    }
  }

  private async publishAll(
    ch: ConfirmChannel,
    queue: string,
    messages: readonly Publishing[],
    now: number,
    confirms: Promise<void>[],
  ) {
    for (const message of messages) {
      let writable = true;
      confirms.push(
        new Promise<void>((resolve, reject) => {
          writable = ch.publish(
            "",
            queue,
            message.body,
            {
              persistent: true,
              mandatory: true,
              messageId: message.id,
              timestamp: Math.floor((message.publishedAt ?? now) / 1000),
              headers: {
                [PUBLISHED_AT_HEADER]: message.publishedAt ?? now,
                ...(message.spentDeliveries ? { [SPENT_DELIVERIES_HEADER]: message.spentDeliveries } : {}),
              },
            },
            (err) =>
              err ? reject(err instanceof Error ? err : new Error(`broker refused message ${message.id}`)) : resolve(),
          );
        }),
      );
      // a full write buffer: wait until the socket drained (or the channel died) before writing more
      if (!writable) await waitForDrain(ch);
    }
  }

  async consume(queue: string, opts: { prefetch: number }, onDelivery: (d: Delivery) => void): Promise<Subscription> {
    checkPrefetch(opts.prefetch);
    const consumer = new AmqpConsumer(this, queue, opts.prefetch, onDelivery, () => this.consumers.delete(consumer));
    this.consumers.add(consumer);
    try {
      await consumer.attach();
    } catch (err) {
      this.consumers.delete(consumer);
      await consumer.stop();
      throw err;
    }
    return consumer;
  }

  async depth(queue: string): Promise<number> {
    return this.withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
  }

  async ping(): Promise<void> {
    // a round trip to the broker, not only a socket that looks open
    await this.withChannel(async () => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    const connection = this.connection;
    this.connection = undefined;
    this.publisher = undefined;
    await connection?.close().catch(() => undefined);
  }
}

function waitForDrain(ch: Channel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ch.off("drain", done);
      ch.off("close", done);
      resolve();
    };
    ch.on("drain", done);
    ch.on("close", done);
  });
}

/** One consumer: its own channel and prefetch; re-attaches after the channel or the connection was lost. */
class AmqpConsumer implements Subscription {
  private channel: Channel | undefined;
  private consumerTag: string | undefined;
  private stopped = false;
  private paused = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Settle functions of this channel's unsettled deliveries (they die with the channel). */
  private readonly unsettled = new Set<{ settled: boolean }>();

  constructor(
    private readonly owner: AmqpQueue,
    private readonly queue: string,
    private readonly prefetch: number,
    private readonly onDelivery: (d: Delivery) => void,
    private readonly forget: () => void,
  ) {}

  /** Open a channel and start consuming. Throws when that fails (the first time; later attempts retry). */
  async attach(): Promise<void> {
    const connection = await this.owner.connect();
    const ch = await connection.createChannel();
    ch.on("error", (err) => this.owner.log?.warn({ err, queue: this.queue }, "amqp consumer channel error"));
    ch.on("close", () => this.lost(ch));
    try {
      await ch.prefetch(this.prefetch);
      this.channel = ch;
      const { consumerTag } = await ch.consume(this.queue, (msg) => this.deliver(ch, msg), { noAck: false });
      this.consumerTag = consumerTag;
      this.failures = 0;
      if (this.stopped) await this.detach(ch, consumerTag);
      else if (this.paused) {
        // paused while this (re)attach was under way: take nothing new on the new channel either
        this.consumerTag = undefined;
        await ch.cancel(consumerTag).catch(() => undefined);
      }
    } catch (err) {
      if (this.channel === ch) this.channel = undefined;
      await ch.close().catch(() => undefined);
      throw err;
    }
  }

  private lost(ch: Channel) {
    if (this.channel !== ch) return;
    this.channel = undefined;
    this.consumerTag = undefined;
    // the broker returns whatever this channel held; settling those deliveries now would be meaningless
    for (const d of this.unsettled) d.settled = true;
    this.unsettled.clear();
    this.reattachLater();
  }

  private reattachLater() {
    // paused: what the lost channel held went back with it, and nothing new is wanted
    if (this.stopped || this.paused || this.timer) return;
    const delay = jitteredDelay(this.failures++, 100, 5_000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped || this.paused || this.channel) return;
      this.attach().catch((err) => {
        this.owner.log?.warn({ err, queue: this.queue }, "amqp consumer could not re-attach, retrying");
        this.reattachLater();
      });
    }, delay);
  }

  private deliver(ch: Channel, msg: ConsumeMessage | null) {
    if (msg === null) {
      // the broker cancelled the consumer (queue deleted): start again when it can
      if (this.channel === ch) {
        this.channel = undefined;
        void ch.close().catch(() => undefined);
        this.reattachLater();
      }
      return;
    }
    const state = { settled: false, releasing: false };
    this.unsettled.add(state);
    const headers = msg.properties.headers ?? {};
    const count = Number(headers["x-delivery-count"] ?? 0);
    const spent = Number(headers[SPENT_DELIVERIES_HEADER] ?? 0);
    const deliveries = (Number.isFinite(count) ? count : 0) + (Number.isFinite(spent) ? spent : 0) + 1;
    const publishedMs = Number(headers[PUBLISHED_AT_HEADER]);
    const id = String(msg.properties.messageId ?? "");
    const limit = this.owner.deliveryLimits.get(this.queue);
    const settle = (what: string, fn: () => void) => async () => {
      if (state.releasing) throw new Error(`delivery ${msg.properties.messageId} is being released (${what})`);
      if (state.settled) {
        if (this.channel !== ch) return; // the channel died: the broker redelivers this message
        throw new Error(`delivery ${msg.properties.messageId} is already settled (${what})`);
      }
      state.settled = true;
      this.unsettled.delete(state);
      if (this.channel !== ch) return;
      fn();
    };
    const publishedAt = Number.isFinite(publishedMs)
      ? publishedMs
      : typeof msg.properties.timestamp === "number"
        ? msg.properties.timestamp * 1000
        : Date.now();
    if (limit !== undefined && deliveries > limit + 1) {
      // a released copy returned past the limit (its consumer died): what the broker does for an original
      void settle("deadLetter", () => {
        this.owner.log?.warn({ queue: this.queue, id, deliveries }, "message dead-lettered: delivery limit");
        ch.nack(msg, false, false);
      })();
      return;
    }
    const delivery: Delivery = {
      id,
      body: msg.content,
      deliveries,
      publishedAt,
      ack: settle("ack", () => ch.ack(msg)),
      // past the limit, to the dead-letter queue (the broker alone would not count a released copy's spent deliveries)
      retry: settle("retry", () => ch.nack(msg, false, limit === undefined || deliveries <= limit)),
      // AMQP 0-9-1 has no uncounted return: a confirmed copy carrying the spent count goes in, then the original is
      // acked (a failure between the two leaves two deliveries of one message, as at-least-once delivery allows)
      release: async () => {
        if (state.settled || state.releasing) return settle("release", () => undefined)();
        state.releasing = true;
        let timer: NodeJS.Timeout | undefined;
        try {
          // bounded: a broker that blocks publishers (memory or disk alarm) must not hold a graceful stop
          await Promise.race([
            this.owner.publish(this.queue, [{ id, body: msg.content, publishedAt, spentDeliveries: deliveries - 1 }]),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error("no confirm within 5 s")), RELEASE_CONFIRM_MS);
            }),
          ]);
        } catch (err) {
          this.owner.log?.warn({ err, queue: this.queue, id }, "could not hand a message back; it returns, counted");
          return;
        } finally {
          clearTimeout(timer);
          state.releasing = false;
        }
        await settle("release", () => ch.ack(msg))();
      },
      deadLetter: async (reason: string) => {
        await settle("deadLetter", () => {
          this.owner.log?.warn({ queue: this.queue, id: msg.properties.messageId, reason }, "message dead-lettered");
          ch.nack(msg, false, false);
        })();
      },
    };
    handOver(delivery, this.onDelivery, this.queue, this.owner.log);
  }

  private async detach(ch: Channel, consumerTag: string | undefined) {
    if (consumerTag) await ch.cancel(consumerTag).catch(() => undefined);
    for (const d of this.unsettled) d.settled = true;
    this.unsettled.clear();
    // every unacknowledged message of this channel goes back to the queue
    try {
      ch.nackAll(true);
    } catch {
      // the channel is already gone: the broker has returned them
    }
    await ch.close().catch(() => undefined);
  }

  async pause(): Promise<void> {
    if (this.paused || this.stopped) return;
    this.paused = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const ch = this.channel;
    const tag = this.consumerTag;
    this.consumerTag = undefined;
    // basic.cancel: the channel stays open, so the deliveries it holds can still be acked
    if (ch && tag) await ch.cancel(tag).catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.forget();
    const ch = this.channel;
    const tag = this.consumerTag;
    this.channel = undefined;
    this.consumerTag = undefined;
    if (ch) await this.detach(ch, tag);
  }
}
