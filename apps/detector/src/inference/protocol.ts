/** Messages between the inference pool (main thread) and its session threads. Plain data, structured-cloned. */
import type { LetterboxGeometry } from "./geometry.js";
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

export type ToThread = {
  type: "run";
  id: number;
  /** Letterboxed interleaved RGB per image, each filling its own buffer (transferred, not copied). */
  images: { rgb: Uint8Array; geometry: LetterboxGeometry }[];
};

/** The batch's RGB buffers, transferred back once read, for the pool to reuse. */
type Returned = { buffers: ArrayBuffer[] };

export type FromThread =
  | {
      type: "ready";
      names: string[];
      imgsz: [number, number];
      provider: string;
      providerFailures: { provider: string; error: string }[];
    }
  | { type: "load-failed"; message: string }
  | ({ type: "result"; id: number; detections: Detection[][]; timings: BatchTimings } & Returned)
  | ({ type: "run-failed"; id: number; message: string } & Returned);
