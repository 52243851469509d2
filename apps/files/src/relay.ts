/**
 * Outbox relay (GUARDRAILS P8): publishes the outbox rows that uploads commit to the `detections` queue through the
 * `JobQueue` port and marks them sent. It runs in the service process on its own loop, woken by each upload and by
 * a poll timer.
 *
 * At-least-once: rows are locked (`FOR UPDATE SKIP LOCKED`, so replicas share the work), published (the port
 * resolves only once the queue stored them durably: publisher confirms on RabbitMQ, a commit on the embedded
 * queue), and marked sent in the same transaction only after that. A crash anywhere before the commit leaves the
 * rows unsent, and they are read and published again; the message id is the job id, so the consumer drops
 * duplicates. Queue and database failures back off with jitter.
 */
import { type JobQueue, jitteredDelay, type Logger, type SqlDatabase } from "@ndt/kit";

export interface DetectionJob {
  jobId: string;
  imageId: string;
  inspectionId: string;
  organizationId: string;
  bucket: string;
  key: string;
  contentType: string;
}

export interface RelayOptions {
  db: SqlDatabase;
  queue: JobQueue;
  /** The queue's name (its dead-letter queue is `<name>.dlq`). */
  queueName: string;
  deliveryLimit: number;
  pollMs: number;
  batch: number;
  log: Logger;
  /** Test hook: runs after rows are read and before they are published (a throw here is a crash). */
  beforePublish?: (jobs: readonly DetectionJob[]) => void | Promise<void>;
}

export class OutboxRelay {
  private stopped = true;
  private declared = false;
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
  }

  private async run() {
    let failures = 0;
    while (!this.stopped) {
      let full = false;
      try {
        if (!this.declared) {
          await this.opts.queue.declare(this.opts.queueName, { deliveryLimit: this.opts.deliveryLimit });
          this.declared = true;
        }
        full = (await this.publishBatch()) === this.opts.batch;
        failures = 0;
      } catch (err) {
        this.opts.log.warn({ err, failures }, "outbox relay failed, retrying");
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

  /** One batch in one transaction; returns how many rows were published. */
  private publishBatch(): Promise<number> {
    return this.opts.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string; payload: DetectionJob }>(
        "SELECT id, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        [this.opts.batch],
      );
      if (rows.length === 0) return 0;
      const jobs = rows.map((r) => r.payload);
      await this.opts.beforePublish?.(jobs);
      await this.opts.queue.publish(
        this.opts.queueName,
        jobs.map((job) => ({ id: job.jobId, body: Buffer.from(JSON.stringify(job)) })),
      );
      // only now: a publish that rejected leaves the rows unsent, for the next round
      await tx.query("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])", [
        rows.map((r) => r.id),
      ]);
      this.published += rows.length;
      return rows.length;
    });
  }
}
