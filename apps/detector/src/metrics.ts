/**
 * The worker's Prometheus metrics, on the service's registry (`/metrics`). The first four names are the ones the
 * detector dashboard and alert rules read (infra/k8s/observability/metrics.ts `DETECTOR`); keep them exact.
 * Images per second is `rate(ndt_detector_images_processed_total[1m])`.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Why a job did not end `done` (label `reason` of ndt_detector_jobs_failed_total): a short, bounded set. */
export type FailureReason =
  | "invalid_job"
  | "image_missing"
  | "object_missing"
  | "unknown_bucket"
  | "too_large"
  | "undecodable"
  | "unsupported_format"
  | "transient"
  | "delivery_limit";

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LAG = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600];

export function detectorMetrics(registry: Registry) {
  const registers = [registry];
  return {
    processed: new Counter({
      name: "ndt_detector_images_processed_total",
      help: "Images whose detections were committed",
      registers,
    }),
    failed: new Counter({
      name: "ndt_detector_jobs_failed_total",
      help: "Jobs that failed (a permanent failure ends the image failed; transient ones are retried), by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    inference: new Histogram({
      name: "ndt_detector_inference_duration_seconds",
      help: "ONNX session.run per batch",
      buckets: SECONDS,
      registers,
    }),
    batchSize: new Histogram({
      name: "ndt_detector_batch_size",
      help: "Images per ONNX run",
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32],
      registers,
    }),
    jobDuration: new Histogram({
      name: "ndt_detector_job_duration_seconds",
      help: "Delivery to ack per job: fetch, decode, batch wait, inference, commit",
      buckets: SECONDS,
      registers,
    }),
    queueLag: new Histogram({
      name: "ndt_detector_queue_lag_seconds",
      help: "Time from publication to delivery to this worker",
      buckets: LAG,
      registers,
    }),
    preprocess: new Histogram({
      name: "ndt_detector_preprocess_duration_seconds",
      help: "Per image: decode and letterbox (sharp), then CHW conversion on the inference thread",
      buckets: SECONDS,
      registers,
    }),
    postprocess: new Histogram({
      name: "ndt_detector_postprocess_duration_seconds",
      help: "Per batch: output decoding, NMS and mapping boxes back",
      buckets: SECONDS,
      registers,
    }),
    inFlight: new Gauge({
      name: "ndt_detector_jobs_in_flight",
      help: "Deliveries held by this worker and not yet settled",
      registers,
    }),
    info: new Gauge({
      name: "ndt_detector_info",
      help: "The model and the execution provider it runs on (value 1)",
      labelNames: ["provider", "model", "threads", "intra_op_threads"] as const,
      registers,
    }),
  };
}

export type DetectorMetrics = ReturnType<typeof detectorMetrics>;
