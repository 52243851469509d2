/** Messages between the inference pool (main thread) and its session threads. Plain data, structured-cloned. */
import type { LetterboxedImage } from "./geometry.js";
import type { BatchTimings, Detection } from "./runner.js";

export interface SessionThreadOptions {
  modelPath: string;
  intraOpThreads: number;
  allowSpinning: boolean;
  /**
   * Niceness added to the thread (and so to the intra-op threads ONNX Runtime starts from it): the event loop,
   * fetching and decoding are scheduled before inference, which takes the CPU they leave. 0 = the process's own.
   */
  niceIncrement: number;
  executionProviders: readonly string[];
  confThreshold: number;
  iouThreshold: number;
  maxDetections: number;
  agnostic: boolean;
}

/** A session thread's `workerData`: its options and the flag it shares with the pool. */
export interface SessionThreadData extends SessionThreadOptions {
  /**
   * 1 while the thread is inside onnxruntime (loading the model, or from the moment the pool hands it a batch until
   * the thread has the answer), else 0; the thread clears it and `Atomics.notify`s. A process exit waits on it (see
   * pool.ts).
   */
  inOrt: Int32Array;
}

export type ToThread = {
  type: "run";
  id: number;
  /**
   * Each image's pixels are a view of a SharedArrayBuffer the pool owns: shared, not copied. The thread reads them
   * before it answers; the pool reuses the buffer once it has the answer.
   */
  images: LetterboxedImage[];
};

export type FromThread =
  | {
      type: "ready";
      names: string[];
      imgsz: [number, number];
      provider: string;
      providerFailures: { provider: string; error: string }[];
    }
  | { type: "load-failed"; message: string }
  | { type: "result"; id: number; detections: Detection[][]; timings: BatchTimings }
  | { type: "run-failed"; id: number; message: string };
