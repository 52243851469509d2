/**
 * Consumer-side rules every `JobQueue` adapter applies the same way, kept in one place so the adapters cannot
 * drift apart (the contract suite proves them on each).
 */
import type { WarnLogger } from "../logger.js";
import type { Delivery } from "./port.js";

/** @throws RangeError unless `prefetch` is an integer ≥ 1 (0 would mean "nothing" here and "unlimited" to RabbitMQ). */
export function checkPrefetch(prefetch: number): void {
  if (!Number.isInteger(prefetch) || prefetch < 1) throw new RangeError("prefetch must be an integer ≥ 1");
}

/**
 * Give `delivery` to the consumer's handler. A handler that throws may never settle it, so the message goes back to
 * the queue (a retry, counted against the delivery limit) rather than being held until the consumer stops; the retry
 * fails harmlessly when the handler had settled it before throwing.
 */
export function handOver(
  delivery: Delivery,
  onDelivery: (d: Delivery) => void,
  queue: string,
  log: WarnLogger | undefined,
): void {
  try {
    onDelivery(delivery);
  } catch (err) {
    log?.warn({ err, queue }, "delivery handler threw; the message goes back to the queue");
    void delivery.retry().catch(() => undefined);
  }
}
