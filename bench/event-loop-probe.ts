/**
 * Preloaded (`--import`) into a service process a benchmark measures: watches that process's own event loop at 1 ms
 * resolution between two SIGUSR2 signals, then writes `{ "max": ms, "p99": ms }` to BENCH_LOOP_FILE. The service
 * itself is unchanged; the probe's cost is one timer per millisecond.
 */
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.BENCH_LOOP_FILE;
if (!file) throw new Error("event-loop-probe: BENCH_LOOP_FILE is not set");
const delay = monitorEventLoopDelay({ resolution: 1 });
let watching = false;
process.on("SIGUSR2", () => {
  if (!watching) {
    delay.reset();
    delay.enable();
    watching = true;
    return;
  }
  delay.disable();
  watching = false;
  writeFileSync(file, JSON.stringify({ max: delay.max / 1e6, p99: delay.percentile(99) / 1e6 }));
});
