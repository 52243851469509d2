/**
 * The metric names the rules and dashboards read, and who exports each. One place, so a renamed metric fails a test
 * here instead of leaving an alert that can never fire.
 */

/** The application namespace's services (apps/kit/src/http/metrics.ts, prom-client). */
export const HTTP = {
  /** Histogram with `method`, `route` (the route template) and `status_code`; `service` from the scrape target. */
  duration: "http_request_duration_seconds",
  count: "http_request_duration_seconds_count",
  bucket: "http_request_duration_seconds_bucket",
} as const;

/**
 * The detection worker's own metrics (prom-client, on its metrics port): the names it must export for the detector
 * dashboard. `batch_size` is a histogram of images per ONNX run.
 */
export const DETECTOR = {
  processed: "ndt_detector_images_processed_total",
  failed: "ndt_detector_jobs_failed_total",
  inference: "ndt_detector_inference_duration_seconds",
  inferenceBucket: "ndt_detector_inference_duration_seconds_bucket",
  batchSize: "ndt_detector_batch_size",
  batchSizeBucket: "ndt_detector_batch_size_bucket",
} as const;

/**
 * Queue depth. Amazon MQ for RabbitMQ does not expose the rabbitmq_prometheus plugin's endpoint, so these come from
 * the prometheus-rabbitmq-exporter polling the broker's management API (same family names and `queue`/`vhost` labels
 * as the plugin's per-object metrics).
 */
export const RABBITMQ = {
  ready: "rabbitmq_queue_messages_ready",
  messages: "rabbitmq_queue_messages",
  consumers: "rabbitmq_queue_consumers",
} as const;

/**
 * One queue's gauge from the exporter. Each exporter replica polls the same broker and exports the same value under
 * its own `pod`, so the replicas are collapsed with `max` (any one of them suffices), never added up.
 */
export function queueGauge(metric: (typeof RABBITMQ)[keyof typeof RABBITMQ], queue: string): string {
  return `max by (queue) (${metric}{queue="${queue}"})`;
}

/** NVIDIA DCGM exporter (add-ons), one series per GPU. */
export const DCGM = {
  utilisation: "DCGM_FI_DEV_GPU_UTIL",
  memoryUsed: "DCGM_FI_DEV_FB_USED",
  memoryFree: "DCGM_FI_DEV_FB_FREE",
} as const;

/** kube-state-metrics (kube-prometheus-stack). */
export const KUBE = {
  restarts: "kube_pod_container_status_restarts_total",
  podReady: "kube_pod_status_ready",
  nodeInfo: "kube_node_info",
} as const;

export const WORK_QUEUE = "detections";
/** The dead-letter queue the `detections` quorum queue's delivery limit routes to (P9). */
export const DEAD_LETTER_QUEUE = "detections.dlq";
