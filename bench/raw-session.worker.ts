/**
 * One bare ONNX session on its own thread, for the detector benchmark's ceiling: loads the bundled model with the
 * given intra-op threads, runs one warm-up batch, says "ready"; on "go" runs `session.run` back to back on the
 * batches it was given for `seconds`, then reports how many images it ran in how long. Several at once measure
 * what N concurrent sessions can do on the machine, as the worker's inference threads run them.
 */
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../apps/detector/src/inference/bundled.js";
import { ModelRunner } from "../apps/detector/src/inference/runner.js";

export interface RawSessionData {
  /** Batches of `batch` CHW images each, in shared memory (copied into this thread's own arrays before use). */
  batches: Float32Array[];
  batch: number;
  intraOpThreads: number;
  seconds: number;
}

export type RawSessionMessage = { type: "ready" } | { type: "done"; images: number; seconds: number };

const port = parentPort;
if (!port) throw new Error("raw-session.worker.ts runs as a worker thread");
const data = workerData as RawSessionData;
const batches = data.batches.map((shared) => Float32Array.from(shared));
const runner = await ModelRunner.load(BUNDLED_MODEL_PATH, {
  ...BUNDLED_MODEL_OPTIONS,
  intraOpThreads: data.intraOpThreads,
});
await runner.runTensor(batches[0]!, data.batch);
port.once("message", () => {
  void (async () => {
    let images = 0;
    const t0 = performance.now();
    for (let i = 0; performance.now() - t0 < data.seconds * 1000; i++) {
      await runner.runTensor(batches[i % batches.length]!, data.batch);
      images += data.batch;
    }
    const seconds = (performance.now() - t0) / 1000;
    await runner.release();
    port.postMessage({ type: "done", images, seconds } satisfies RawSessionMessage);
  })();
});
port.postMessage({ type: "ready" } satisfies RawSessionMessage);
