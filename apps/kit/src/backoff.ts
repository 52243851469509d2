/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the delay for
 * attempt n is uniform in [0, min(cap, base·2ⁿ)], so replicas reconnecting after an outage do not stampede.
 */
export function jitteredDelay(attempt: number, baseMs = 100, capMs = 5_000, random: () => number = Math.random) {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.max(0, attempt)));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
