import { HttpConfig, loadConfig, ObjectStoreConfig, PostgresConfig, QueueConfig } from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

export const DetectorConfigSchema = Type.Object({
  ...HttpConfig,
  /** /healthz, /readyz and /metrics only (stacks/topology.ts: the worker's metrics port). */
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9090 }),
  ...PostgresConfig,
  ...QueueConfig,
  /** S3_BUCKET, when set, is the only bucket this worker reads; unset = the bucket each job names. */
  ...ObjectStoreConfig,
  /** Queue of detection jobs (apps/files publishes it); its dead-letter queue is `<name>.dlq`. */
  DETECTIONS_QUEUE: Type.String({ minLength: 1, default: "detections" }),
  /** Deliveries of one job before it is dead-lettered: must equal the publisher's (the queue's argument). */
  DETECTIONS_DELIVERY_LIMIT: Type.Integer({ minimum: 1, default: 5 }),
  /** Unsettled deliveries held at once: bounds memory (one decoded image each) and keeps the batches full. */
  PREFETCH: Type.Integer({ minimum: 1, maximum: 1000, default: 16 }),
  /** A batch runs when this many images are ready... */
  BATCH_MAX: Type.Integer({ minimum: 1, maximum: 64, default: 8 }),
  /** ...or when its first image has waited this long. */
  BATCH_WAIT_MS: Type.Integer({ minimum: 0, maximum: 10_000, default: 10 }),
  /**
   * Inference threads, one ONNX session each. On CPU, sessions × 1 intra-op thread outrun 1 session × the same cores
   * once decoding shares them (bench/detector.bench.ts: one session's intra-op threads wait for each other whenever
   * one is preempted); on a GPU, 1 session, the GPU pod sets it.
   */
  INFERENCE_THREADS: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
  /**
   * At shutdown, or at any process exit, how long a running batch may take before its thread is ended anyway (which
   * aborts the process if the run is still going): keep it above a batch's time, and SHUTDOWN_TIMEOUT_MS plus this
   * within the pod's grace period.
   */
  INFERENCE_STOP_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 5_000 }),
  /** ONNX Runtime intra-op threads per session: INFERENCE_THREADS × this ≈ the cores the process gets. */
  ORT_INTRA_OP_THREADS: Type.Integer({ minimum: 1, maximum: 256, default: 1 }),
  /** Idle ONNX Runtime threads spin-wait (lower latency on dedicated cores, slower when decoding shares them). */
  ORT_ALLOW_SPINNING: Type.Boolean({ default: false }),
  /**
   * Niceness added to the inference threads (Linux): the event loop, fetching and decoding run first and inference
   * takes the CPU they leave, so the loop stays responsive while the cores are saturated. 0 = no change.
   */
  INFERENCE_NICE_INCREMENT: Type.Integer({ minimum: 0, maximum: 19, default: 10 }),
  /** Images decoded and letterboxed at once (each on one libvips thread): enough to keep the batches full. */
  DECODE_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
  /** Execution providers tried in order; the first that loads the model is used (logged at start). */
  ORT_PROVIDERS: Type.String({ pattern: "^\\s*(cuda|cpu)\\s*(,\\s*(cuda|cpu)\\s*)*$", default: "cuda,cpu" }),
  /** A §4 ONNX model; unset = the bundled model/defects.onnx with its measured thresholds. */
  MODEL_PATH: Type.Optional(Type.String({ minLength: 1 })),
  /** sha256 of MODEL_PATH (hex): the worker refuses to start on a mismatch. */
  MODEL_SHA256: Type.Optional(Type.String({ pattern: "^[0-9a-fA-F]{64}$" })),
  /** Overrides of the model's post-processing (defaults: the bundled model's, or 0.25 / 0.45 / per-class). */
  CONF_THRESHOLD: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  NMS_IOU: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  NMS_AGNOSTIC: Type.Optional(Type.Boolean()),
  MAX_DETECTIONS: Type.Integer({ minimum: 1, maximum: 10_000, default: 300 }),
  /** Larger images fail their job (`too_large`) instead of being decoded. */
  MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, default: 50 * 1024 * 1024 }),
});
export type DetectorConfig = Static<typeof DetectorConfigSchema>;

export function loadDetectorConfig(env: Record<string, string | undefined> = process.env): DetectorConfig {
  return loadConfig(DetectorConfigSchema, env);
}
