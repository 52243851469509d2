/**
 * Outbox relay (GUARDRAILS P8): publishes the outbox rows that uploads commit to the `detections` quorum queue and
 * marks them sent. It runs in the service process on its own loop, woken by each upload and by a poll timer.
 *
 * At-least-once: rows are locked (`FOR UPDATE SKIP LOCKED`, so replicas share the work), published as persistent
 * messages on a confirm channel, and marked sent in the same transaction only after the broker confirmed them. A
 * crash anywhere before that commit leaves the rows unsent, and they are re-read and published again; the message
 * id is the job id, so the consumer drops duplicates. Broker and database failures back off with jitter.
 */
import { jitteredDelay, type SqlDatabase } from "@ndt/kit";
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";

/** The queue topology of detection jobs; the detector declares the same (arguments must match). */
export function detectionsTopology(queue: string, deliveryLimit: number) {
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

export async function assertDetectionsTopology(ch: amqp.Channel, queue: string, deliveryLimit: number) {
  const t = detectionsTopology(queue, deliveryLimit);
  await ch.assertExchange(t.dlx, "direct", { durable: true });
  await ch.assertQueue(t.dlq, { durable: true, arguments: t.dlqArguments });
  await ch.bindQueue(t.dlq, t.dlx, t.dlq);
  await ch.assertQueue(t.queue, { durable: true, arguments: t.queueArguments });
  return t;
}

export interface DetectionJob {
  jobId: string;
  imageId: string;
  inspectionId: string;
  organizationId: string;
  bucket: string;
  key: string;
  contentType: string;
}

type Logger = {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
};

export interface RelayOptions {
  db: SqlDatabase;
  amqpUrl: string;
  queue: string;
  deliveryLimit: number;
  pollMs: number;
  batch: number;
  log: Logger;
  /** Test hook: runs after rows are read and before they are published (a throw here is a crash). */
  beforePublish?: (jobs: readonly DetectionJob[]) => void | Promise<void>;
}

export class OutboxRelay {
  private connection: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private stopped = true;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private kicked = false;
  /** Rows published so far (observable in tests). */
  published = 0;

  constructor(private readonly opts: RelayOptions) {}

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Publish soon (after an upload committed). */
  kick() {
    this.kicked = true;
    this.wake?.();
  }

  async stop() {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.disconnect();
  }

  private async run() {
    let failures = 0;
    while (!this.stopped) {
      let full = false;
      try {
        const channel = await this.connect();
        full = (await this.publishBatch(channel)) === this.opts.batch;
        failures = 0;
      } catch (err) {
        this.opts.log.warn({ err, failures }, "outbox relay failed, retrying");
        await this.disconnect();
        await this.idle(jitteredDelay(failures++));
        continue;
      }
      if (!full) await this.idle(this.opts.pollMs);
    }
  }

  private idle(ms: number): Promise<void> {
    if (this.kicked || this.stopped) {
      this.kicked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.kicked = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async connect(): Promise<ConfirmChannel> {
    if (this.channel) return this.channel;
    const url = new URL(this.opts.amqpUrl);
    // dead peers are noticed within ~2 heartbeats instead of the OS's TCP timeout
    if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", "15");
    const connection = await amqp.connect(url.toString(), { timeout: 5_000 });
    connection.on("error", (err) => this.opts.log.warn({ err }, "amqp connection error"));
    connection.on("close", () => {
      if (this.connection === connection) {
        this.connection = undefined;
        this.channel = undefined;
      }
    });
    this.connection = connection;
    const channel = await connection.createConfirmChannel();
    channel.on("error", (err) => this.opts.log.warn({ err }, "amqp channel error"));
    channel.on("close", () => {
      if (this.channel === channel) this.channel = undefined;
    });
    await assertDetectionsTopology(channel, this.opts.queue, this.opts.deliveryLimit);
    this.channel = channel;
    return channel;
  }

  private async disconnect() {
    const connection = this.connection;
    this.connection = undefined;
    this.channel = undefined;
    await connection?.close().catch(() => undefined);
  }

  /** One batch in one transaction; returns how many rows were published. */
  private publishBatch(channel: ConfirmChannel): Promise<number> {
    return this.opts.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string; payload: DetectionJob }>(
        "SELECT id, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        [this.opts.batch],
      );
      if (rows.length === 0) return 0;
      const jobs = rows.map((r) => r.payload);
      await this.opts.beforePublish?.(jobs);
      for (const job of jobs) {
        channel.publish("", this.opts.queue, Buffer.from(JSON.stringify(job)), {
          persistent: true,
          messageId: job.jobId,
          contentType: "application/json",
          type: "detection.requested",
          timestamp: Math.floor(Date.now() / 1000),
        });
      }
      await channel.waitForConfirms();
      await tx.query("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])", [
        rows.map((r) => r.id),
      ]);
      this.published += rows.length;
      return rows.length;
    });
  }
}
