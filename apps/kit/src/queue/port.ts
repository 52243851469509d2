/**
 * The job-queue port (GUARDRAILS P8): durable, at-least-once delivery of jobs between services. The real adapter is
 * RabbitMQ / Amazon MQ (a quorum queue with a dead-letter queue and a delivery limit); the local stack's embedded
 * adapter keeps the queue in PostgreSQL. Both pass the same contract suite (`@ndt/kit/testing`).
 *
 * Semantics every adapter keeps:
 * - `publish` resolves only once every message is stored durably (publisher confirms); a rejection means none of
 *   the unconfirmed messages may be assumed stored, so the caller publishes them again (ids make that harmless);
 * - a delivery is settled exactly once: `ack` (done), `retry` (back to the queue; its `deliveries` grows, and past
 *   the queue's delivery limit it goes to the dead-letter queue `<queue>.dlq`), `release` (back to the queue, this
 *   delivery not counted), or `deadLetter` (straight there);
 * - an unsettled delivery whose consumer stops, crashes or loses its connection is delivered again;
 * - a consumer holds at most `prefetch` unsettled deliveries;
 * - a lost connection is re-established with backoff and consuming resumes by itself (unless paused: a pause is
 *   for good, the step before `stop`).
 */
export interface QueueOptions {
  /** Deliveries of one message before it is dead-lettered (RabbitMQ quorum `x-delivery-limit`). */
  deliveryLimit: number;
}

export interface OutgoingMessage {
  /** Stable id (the job id): consumers drop duplicates by it. */
  id: string;
  body: Buffer;
}

export interface Delivery {
  id: string;
  body: Buffer;
  /** 1 on the first delivery, 2 on the first redelivery, and so on. */
  deliveries: number;
  /** When the message was first published (ms since the epoch), for queue-lag metrics. */
  publishedAt: number;
  ack(): Promise<void>;
  retry(): Promise<void>;
  /**
   * Back to the queue as if this delivery had not happened: a consumer that stops before starting the work hands it
   * back without spending one of the message's attempts (RabbitMQ before 4.3 counts every return, so a job held
   * through a few rolling restarts would reach the delivery limit and be dead-lettered without ever failing).
   * If the hand-back fails, the delivery stays unsettled and goes back, counted, when the consumer stops.
   */
  release(): Promise<void>;
  deadLetter(reason: string): Promise<void>;
}

export interface Subscription {
  /**
   * Take no new deliveries, but keep those held settleable: a graceful stop pauses, lets the work in hand finish and
   * settle, then stops. Without the pause, each settled delivery makes room for a new one that would only go back,
   * and on RabbitMQ before 4.3 every return counts towards the delivery limit.
   */
  pause(): Promise<void>;
  /** Stop taking deliveries; deliveries not yet settled go back to the queue. */
  stop(): Promise<void>;
}

export interface JobQueue {
  /** Create the queue and its dead-letter queue (idempotent; the same options everywhere). */
  declare(queue: string, opts: QueueOptions): Promise<void>;
  publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void>;
  consume(queue: string, opts: { prefetch: number }, onDelivery: (d: Delivery) => void): Promise<Subscription>;
  /** Messages ready for delivery (metrics, tests). */
  depth(queue: string): Promise<number>;
  /** Throws unless the queue server answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
