/** Fixed-window rate limiting over the key-value store (shared by every replica). */
import type { CounterHit, KeyValueStore } from "./redis/port.js";

export interface Limit {
  /** Requests allowed per window. */
  max: number;
  windowMs: number;
}

export interface LimitResult {
  allowed: boolean;
  remaining: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
}

/** The store key of a limit's counter. */
export const limitKey = (key: string) => `rl:${key}`;

/** Judge a counter hit against a limit. */
export function judge({ count, resetMs }: CounterHit, limit: Limit): LimitResult {
  return { allowed: count <= limit.max, remaining: Math.max(0, limit.max - count), resetMs };
}

export async function consume(store: KeyValueStore, key: string, limit: Limit): Promise<LimitResult> {
  return judge(await store.hit(limitKey(key), limit.windowMs), limit);
}
