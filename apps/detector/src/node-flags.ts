/**
 * The V8 flags the worker's process starts with, wherever it is started: the GPU image's ENTRYPOINT
 * (docker/detector-gpu.Dockerfile, checked against this list by tools/delivery/dockerfiles.test.ts), the local stack
 * (which reads an app's `src/node-flags.ts` by that name), the benchmark and the process tests. They are command-line
 * flags: Node refuses them in NODE_OPTIONS.
 *
 * `--initial-old-space-size`: a floor under V8's old-generation limit. The worker idles between bursts; idle-time
 * collections shrink the limit to just above the ~28 MB live set, and in-flight jobs (prefetched deliveries, S3
 * responses, pixels waiting for a batch) live for seconds, long enough to be promoted, so the next burst ran a full
 * mark-compact about every second, each pausing the event loop 5-25 ms (bench (c), --trace-gc: ~12 per 11 s round
 * without the floor, at most 1 with it). With the flag, --trace-incremental-marking shows the limit staying at
 * 128 MB through idle-time collections; the one collection left in a round starts on external memory pressure.
 */
export const NODE_FLAGS = ["--initial-old-space-size=128"] as const;
