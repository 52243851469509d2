/** Fixed-window rate limiting over the key-value store (shared by every replica). */
import type { KeyValueStore } from "./redis/port.js";

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

export async function consume(store: KeyValueStore, key: string, limit: Limit): Promise<LimitResult> {
  const { count, resetMs } = await store.hit(`rl:${key}`, limit.windowMs);
  return { allowed: count <= limit.max, remaining: Math.max(0, limit.max - count), resetMs };
}
