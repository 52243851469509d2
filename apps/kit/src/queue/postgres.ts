/**
 * Embedded adapter of the `JobQueue` port on PostgreSQL, for the local stack (no RabbitMQ there). Messages are rows
 * of `ndt_queue.messages`, so they survive restarts and every process on the database shares the queues.
 *
 * - claiming: `FOR UPDATE SKIP LOCKED`, so concurrent consumers never take the same row and never wait on each other;
 * - visibility: a claimed row carries a lease (a token and an expiry). Its consumer renews the lease while it holds
 *   the delivery; a consumer that crashed stops renewing, the lease runs out and the row is delivered again;
 * - delivery limit: like a RabbitMQ quorum queue, a message is delivered at most 1 + limit times (deliveries handed
 *   back with `release` not counted); then it moves to
 *   `<queue>.dlq` (a row whose `queue` is changed, in the same statement), as does `deadLetter`;
 * - waking: publishers `NOTIFY ndt_queue` with the queue's name (sent at commit); each adapter LISTENs on one
 *   connection and wakes its consumers of that queue. A poll timer covers notifications missed while the listening
 *   connection was being re-established.
 */
import { type Static, Type } from "@sinclair/typebox";
import pg from "pg";
import { jitteredDelay, sleep } from "../backoff.js";
import type { PgDatabase } from "../postgres/pg.js";
import { createSchemaOnce } from "../postgres/schema.js";
import { checkPrefetch, handOver } from "./consuming.js";
import type { Delivery, JobQueue, OutgoingMessage, QueueOptions, Subscription } from "./port.js";
import type { WarnLogger } from "../logger.js";

export const PgQueueConfig = {
  /** Consumers look for messages this often even without a notification. */
  QUEUE_POLL_MS: Type.Integer({ minimum: 10, default: 1_000 }),
  /** How long a delivery stays invisible without its consumer renewing it: the redelivery delay after a crash. */
  QUEUE_LEASE_MS: Type.Integer({ minimum: 100, default: 30_000 }),
};
export const PgQueueConfigSchema = Type.Object(PgQueueConfig);
export type PgQueueSettings = Static<typeof PgQueueConfigSchema>;

const CHANNEL = "ndt_queue";

const SCHEMA = [
  "CREATE SCHEMA IF NOT EXISTS ndt_queue",
  `CREATE TABLE IF NOT EXISTS ndt_queue.queues (
     name text PRIMARY KEY,
     -- NULL: no limit (dead-letter queues)
     delivery_limit integer
   )`,
  `CREATE TABLE IF NOT EXISTS ndt_queue.messages (
     seq bigserial PRIMARY KEY,
     queue text NOT NULL,
     id text NOT NULL,
     body bytea NOT NULL,
     published_at timestamptz NOT NULL,
     deliveries integer NOT NULL DEFAULT 0,
     -- ready when visible_at has passed: a claimed row is invisible until its lease expires
     visible_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     lease uuid,
     dead_reason text
   )`,
  "CREATE INDEX IF NOT EXISTS messages_ready_idx ON ndt_queue.messages (queue, visible_at, seq)",
  "CREATE INDEX IF NOT EXISTS messages_lease_idx ON ndt_queue.messages (lease) WHERE lease IS NOT NULL",
];

/** One advisory-lock key for the schema's creation, so concurrent processes do not race on CREATE. */
const SCHEMA_LOCK = 0x6e_64_74_71; // "ndtq"

const CLAIM = `WITH next AS (
  SELECT seq FROM ndt_queue.messages
  WHERE queue = $1 AND visible_at <= clock_timestamp()
  ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE ndt_queue.messages m
SET deliveries = m.deliveries + 1, lease = gen_random_uuid(),
    visible_at = clock_timestamp() + make_interval(secs => $3::float8 / 1000)
FROM next WHERE m.seq = next.seq
RETURNING m.seq::text AS seq, m.id, m.body, m.deliveries, m.lease::text AS lease,
  (extract(epoch FROM m.published_at) * 1000)::float8 AS published_ms`;

// a leased row whose consumer vanished after its last allowed delivery: dead-letter it instead of delivering again
const EXPIRE_OVER_LIMIT = `WITH moved AS (
  UPDATE ndt_queue.messages SET queue = queue || '.dlq', lease = NULL, deliveries = 0,
    visible_at = clock_timestamp(), dead_reason = 'delivery limit'
  WHERE queue = $1 AND lease IS NOT NULL AND visible_at <= clock_timestamp() AND deliveries > $2
  RETURNING queue
)
SELECT pg_notify('${CHANNEL}', queue) FROM (SELECT DISTINCT queue FROM moved) q`;

const RETRY = `WITH settled AS (
  UPDATE ndt_queue.messages SET lease = NULL, visible_at = clock_timestamp(),
    queue = CASE WHEN $3::integer IS NOT NULL AND deliveries > $3 THEN queue || '.dlq' ELSE queue END,
    dead_reason = CASE WHEN $3::integer IS NOT NULL AND deliveries > $3 THEN 'delivery limit' END,
    deliveries = CASE WHEN $3::integer IS NOT NULL AND deliveries > $3 THEN 0 ELSE deliveries END
  WHERE seq = $1::bigint AND lease = $2::uuid
  RETURNING queue
)
SELECT pg_notify('${CHANNEL}', queue) FROM settled`;

const DEAD_LETTER = `WITH settled AS (
  UPDATE ndt_queue.messages SET queue = queue || '.dlq', lease = NULL, deliveries = 0,
    visible_at = clock_timestamp(), dead_reason = $3
  WHERE seq = $1::bigint AND lease = $2::uuid
  RETURNING queue
)
SELECT pg_notify('${CHANNEL}', queue) FROM settled`;

// leases back to the queue. $2 takes back the claim's count: 1 for a delivery released uncounted, or rows claimed but
// never handed to the consumer (it paused or stopped meanwhile); 0 for deliveries a stopping consumer left unsettled
const RELEASE = `WITH released AS (
  UPDATE ndt_queue.messages SET lease = NULL, visible_at = clock_timestamp(), deliveries = deliveries - $2::integer
  WHERE lease = ANY($1::uuid[])
  RETURNING queue
)
SELECT pg_notify('${CHANNEL}', queue) FROM (SELECT DISTINCT queue FROM released) q`;

const RENEW = `UPDATE ndt_queue.messages SET visible_at = clock_timestamp() + make_interval(secs => $2::float8 / 1000)
  WHERE lease = ANY($1::uuid[])`;

/** A connection-level failure (the query may not have reached the server): worth another try when idempotent. */
const connectionLost = (err: unknown) => {
  const code = (err as { code?: unknown }).code;
  return typeof code !== "string" || code.startsWith("57P") || code.startsWith("08");
};

export class PgQueue implements JobQueue {
  /** Create the schema once (idempotent; concurrent processes serialise on an advisory lock). */
  readonly ready: () => Promise<void>;
  private readonly consumers = new Set<PgConsumer>();
  private listener: pg.Client | undefined;
  private listening = false;
  private listenerFailures = 0;
  private listenerTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly db: PgDatabase,
    readonly settings: PgQueueSettings,
    readonly log?: WarnLogger,
  ) {
    this.ready = createSchemaOnce(db, SCHEMA_LOCK, SCHEMA);
  }

  /** Run an idempotent statement, again when the connection was lost under it. */
  async query<R extends pg.QueryResultRow>(text: string, params: unknown[]): Promise<R[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.db.query<R>(text, params)).rows;
      } catch (err) {
        if (attempt >= 4 || !connectionLost(err) || this.closed) throw err;
        await sleep(jitteredDelay(attempt, 50, 1_000));
      }
    }
  }

  async declare(queue: string, opts: QueueOptions): Promise<void> {
    if (!Number.isInteger(opts.deliveryLimit) || opts.deliveryLimit < 1) {
      throw new RangeError("deliveryLimit must be an integer ≥ 1");
    }
    await this.ready();
    await this.db.query(
      `INSERT INTO ndt_queue.queues (name, delivery_limit) VALUES ($1, $2), ($1 || '.dlq', NULL)
       ON CONFLICT (name) DO NOTHING`,
      [queue, opts.deliveryLimit],
    );
    const limit = await this.limitOf(queue);
    // like RabbitMQ refusing a re-declaration with other arguments: the options must be the same everywhere
    if (limit !== opts.deliveryLimit) {
      throw new Error(`queue ${queue} exists with delivery limit ${limit}, not ${opts.deliveryLimit}`);
    }
  }

  /** The queue's delivery limit (null: none). Throws when the queue was never declared. */
  async limitOf(queue: string): Promise<number | null> {
    await this.ready();
    const rows = await this.query<{ delivery_limit: number | null }>(
      "SELECT delivery_limit FROM ndt_queue.queues WHERE name = $1",
      [queue],
    );
    if (!rows[0]) throw new Error(`queue ${queue} does not exist (declare it first)`);
    return rows[0].delivery_limit;
  }

  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.ready();
    // one statement: the rows and the notification commit together; nothing is stored for an undeclared queue
    const { rows } = await this.db.query<{ n: string }>(
      `WITH inserted AS (
         INSERT INTO ndt_queue.messages (queue, id, body, published_at)
         SELECT $1, m.id, m.body, to_timestamp($4::float8 / 1000)
         FROM unnest($2::text[], $3::bytea[]) AS m(id, body)
         WHERE EXISTS (SELECT 1 FROM ndt_queue.queues WHERE name = $1)
         RETURNING 1
       )
       SELECT c.n, pg_notify('${CHANNEL}', $1) FROM (SELECT count(*) AS n FROM inserted) c`,
      [queue, messages.map((m) => m.id), messages.map((m) => m.body), Date.now()],
    );
    if (Number(rows[0]?.n) !== messages.length) {
      throw new Error(`queue ${queue} does not exist: ${messages.length} message(s) were not stored`);
    }
  }

  async consume(queue: string, opts: { prefetch: number }, onDelivery: (d: Delivery) => void): Promise<Subscription> {
    checkPrefetch(opts.prefetch);
    if (this.closed) throw new Error("the job queue is closed");
    const limit = await this.limitOf(queue);
    const consumer = new PgConsumer(this, queue, limit, opts.prefetch, onDelivery, () =>
      this.consumers.delete(consumer),
    );
    this.consumers.add(consumer);
    this.listen();
    consumer.start();
    return consumer;
  }

  async depth(queue: string): Promise<number> {
    await this.limitOf(queue);
    const rows = await this.query<{ n: string }>(
      "SELECT count(*) AS n FROM ndt_queue.messages WHERE queue = $1 AND visible_at <= clock_timestamp()",
      [queue],
    );
    return Number(rows[0]!.n);
  }

  async ping(): Promise<void> {
    await this.db.query("SELECT 1");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.closed = true;
    await this.unlisten();
  }

  /**
   * Stop at once without releasing anything, as a killed process does: its deliveries come back only when their
   * leases expire. For tests of crash recovery.
   */
  async halt(): Promise<void> {
    this.closed = true;
    for (const c of this.consumers) c.halt();
    this.consumers.clear();
    await this.unlisten();
  }

  private listen() {
    if (this.listening || this.closed) return;
    this.listening = true;
    void this.connectListener();
  }

  private async connectListener(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(this.db.pool.options);
    client.on("error", (err) => this.log?.warn({ err }, "job queue listener error"));
    client.on("end", () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      this.reconnectListener();
    });
    client.on("notification", (msg) => {
      for (const c of this.consumers) if (c.queue === msg.payload) c.wake();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      if (this.closed) {
        await client.end().catch(() => undefined);
        return;
      }
      this.listener = client;
      this.listenerFailures = 0;
      // anything published while we were not listening
      for (const c of this.consumers) c.wake();
    } catch (err) {
      this.log?.warn({ err }, "job queue listener could not connect");
      await client.end().catch(() => undefined);
      this.reconnectListener();
    }
  }

  private reconnectListener() {
    if (this.closed || this.listenerTimer) return;
    this.listenerTimer = setTimeout(() => {
      this.listenerTimer = undefined;
      void this.connectListener();
    }, jitteredDelay(this.listenerFailures++));
  }

  private async unlisten() {
    clearTimeout(this.listenerTimer);
    this.listenerTimer = undefined;
    const client = this.listener;
    this.listener = undefined;
    this.listening = false;
    await client?.end().catch(() => undefined);
  }
}

interface Held {
  lease: string;
  settled: boolean;
}

/** A message as CLAIM returns it. */
type ClaimedRow = {
  seq: string;
  id: string;
  body: Buffer;
  deliveries: number;
  lease: string;
  published_ms: number;
};

class PgConsumer implements Subscription {
  private stopped = false;
  /** Claims nothing more; leases held are still renewed and settleable. */
  private paused = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly owner: PgQueue,
    readonly queue: string,
    private readonly limit: number | null,
    private readonly prefetch: number,
    private readonly onDelivery: (d: Delivery) => void,
    private readonly forget: () => void,
  ) {}

  start() {
    this.loop = this.run();
    const every = Math.max(50, Math.floor(this.owner.settings.QUEUE_LEASE_MS / 3));
    this.renewTimer = setInterval(() => void this.renew(), every);
  }

  wake() {
    this.woken = true;
    this.wakeUp?.();
  }

  private idle(ms: number): Promise<void> {
    if (this.woken || this.stopped || this.paused) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  private async run() {
    let failures = 0;
    while (!this.stopped && !this.paused) {
      const free = this.prefetch - this.held.size;
      if (free <= 0) {
        // a settled delivery wakes us
        await this.idle(this.owner.settings.QUEUE_POLL_MS);
        continue;
      }
      let claimed = 0;
      try {
        if (this.limit !== null) await this.owner.db.query(EXPIRE_OVER_LIMIT, [this.queue, this.limit]);
        const rows = await this.owner.db.query<ClaimedRow>(CLAIM, [
          this.queue,
          free,
          this.owner.settings.QUEUE_LEASE_MS,
        ]);
        failures = 0;
        claimed = rows.rows.length;
        // stopped or paused while claiming: the rest go straight back, undelivered
        const undelivered = rows.rows.findIndex(() => this.stopped || this.paused);
        for (const row of undelivered < 0 ? rows.rows : rows.rows.slice(0, undelivered)) this.deliver(row);
        if (undelivered >= 0) {
          const leases = rows.rows.slice(undelivered).map((row) => row.lease);
          await this.owner.query(RELEASE, [leases, 1]).catch(() => undefined);
        }
      } catch (err) {
        if (this.stopped || this.paused) break;
        this.owner.log?.warn({ err, queue: this.queue }, "job queue consumer failed, retrying");
        await this.idle(jitteredDelay(failures++, 100, 5_000));
        continue;
      }
      if (claimed < free) await this.idle(this.owner.settings.QUEUE_POLL_MS);
    }
  }

  private deliver(row: ClaimedRow) {
    const held: Held = { lease: row.lease, settled: false };
    this.held.set(row.lease, held);
    const settle = (what: string, run: () => Promise<unknown>) => async () => {
      if (held.settled) {
        if (this.stopped) return; // released by stop(): already back in the queue
        throw new Error(`delivery ${row.id} is already settled (${what})`);
      }
      held.settled = true;
      try {
        // a lease that expired meanwhile matches nothing: the message was delivered again elsewhere
        await run();
      } finally {
        this.held.delete(row.lease);
        this.wake();
      }
    };
    const delivery: Delivery = {
      id: row.id,
      body: row.body,
      deliveries: row.deliveries,
      publishedAt: Math.round(row.published_ms),
      ack: settle("ack", () =>
        this.owner.query("DELETE FROM ndt_queue.messages WHERE seq = $1::bigint AND lease = $2::uuid", [
          row.seq,
          row.lease,
        ]),
      ),
      retry: settle("retry", () => this.owner.query(RETRY, [row.seq, row.lease, this.limit])),
      release: settle("release", () => this.owner.query(RELEASE, [[row.lease], 1])),
      deadLetter: (reason: string) =>
        settle("deadLetter", () => this.owner.query(DEAD_LETTER, [row.seq, row.lease, reason]))(),
    };
    handOver(delivery, this.onDelivery, this.queue, this.owner.log);
  }

  private async renew() {
    const leases = [...this.held.values()].filter((h) => !h.settled).map((h) => h.lease);
    if (leases.length === 0 || this.stopped) return;
    await this.owner.db
      .query(RENEW, [leases, this.owner.settings.QUEUE_LEASE_MS])
      .catch((err) => this.owner.log?.warn({ err, queue: this.queue }, "job queue lease renewal failed"));
  }

  halt() {
    this.stopped = true;
    clearInterval(this.renewTimer);
    this.wakeUp?.();
    for (const h of this.held.values()) h.settled = true;
    this.held.clear();
  }

  async pause(): Promise<void> {
    if (this.paused || this.stopped) return;
    this.paused = true;
    this.wakeUp?.();
    await this.loop;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.renewTimer);
    this.forget();
    this.wakeUp?.();
    await this.loop;
    const leases = [...this.held.values()].filter((h) => !h.settled).map((h) => h.lease);
    for (const h of this.held.values()) h.settled = true;
    this.held.clear();
    if (leases.length > 0) await this.owner.query(RELEASE, [leases, 0]);
  }
}
