/**
 * One inference thread: loads the model once for the thread's life and runs the batches the pool sends, so CHW
 * assembly, `session.run`, decoding and NMS never run on the event loop. Imports no image codec (geometry.ts only).
 */
import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type { FromThread, SessionThreadData, ToThread } from "./protocol.js";
import { ModelRunner } from "./runner.js";

const port = parentPort;
if (!port) throw new Error("session.worker must run in a worker thread");
const opts = workerData as SessionThreadData;
const send = (message: FromThread) => port.postMessage(message);

/** Out of onnxruntime: from here this thread can be ended safely (a process exit may be waiting for it). */
function leftOrt(): void {
  Atomics.store(opts.inOrt, 0, 0);
  Atomics.notify(opts.inOrt, 0);
}

/**
 * Lowers this thread's priority before the session exists, so ONNX Runtime's intra-op threads inherit it (Linux: nice
 * is per thread). Elsewhere, or where not permitted, the thread keeps the process's priority.
 */
function lowerThreadPriority(increment: number) {
  if (increment <= 0) return;
  try {
    // /proc/thread-self -> "<pid>/task/<tid>"
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    setPriority(tid, Math.min(19, getPriority(tid) + increment));
  } catch {
    // not Linux, or not permitted
  }
}

lowerThreadPriority(opts.niceIncrement);
let runner: ModelRunner;
try {
  runner = await ModelRunner.load(opts.modelPath, opts);
  leftOrt();
  send({
    type: "ready",
    names: [...runner.names],
    imgsz: [runner.imgsz[0], runner.imgsz[1]],
    provider: runner.provider,
    providerFailures: [...runner.providerFailures],
  });
} catch (err) {
  leftOrt();
  send({ type: "load-failed", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

// One batch at a time: the pool never sends a second before the first answered.
port.on("message", (message: ToThread) => {
  if (message.type !== "run") return;
  runner.runLetterboxed(message.images).then(
    (result) => {
      leftOrt();
      send({ type: "result", id: message.id, ...result });
    },
    (err: unknown) => {
      leftOrt();
      send({ type: "run-failed", id: message.id, message: err instanceof Error ? err.message : String(err) });
    },
  );
});
