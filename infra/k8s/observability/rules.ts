import { APP_NAMESPACE } from "../names.js";
import { DCGM, DEAD_LETTER_QUEUE, DETECTOR, HTTP, KUBE, queueGauge, RABBITMQ, WORK_QUEUE } from "./metrics.js";

/** One alerting rule; `severity` routes it (critical pages, warning posts), `summary` is the one-line message. */
export interface AlertRule {
  alert: string;
  expr: string;
  /** How long the condition must hold: a Prometheus duration. */
  for: `${number}${"s" | "m" | "h"}`;
  labels: { severity: "critical" | "warning" };
  annotations: { summary: string; description: string };
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export interface AlertThresholds {
  /** Fraction of a service's requests answered 5xx. @default 0.05 */
  errorRatio: number;
  /** p99 latency in seconds. @default 1 */
  p99Seconds: number;
  /** Ready messages above which a growing queue is a problem. @default 100 */
  queueBacklog: number;
  /** Container restarts in 15 minutes. @default 3 */
  restarts: number;
  /** Average GPU utilisation (percent) below which the GPUs count as idle. @default 10 */
  gpuIdlePercent: number;
}

export const DEFAULT_THRESHOLDS: AlertThresholds = {
  errorRatio: 0.05,
  p99Seconds: 1,
  queueBacklog: 100,
  restarts: 3,
  gpuIdlePercent: 10,
};

const app = `namespace="${APP_NAMESPACE}"`;
/** Probes and scrapes are not user traffic. */
const userRoutes = `${app}, route!~"/healthz|/readyz|/metrics"`;

/** The platform's alerts, over the metric names of metrics.ts. */
export function platformRules(thresholds: AlertThresholds = DEFAULT_THRESHOLDS): RuleGroup[] {
  const t = thresholds;
  const requests = `sum by (namespace, service) (rate(${HTTP.count}{${userRoutes}}[5m]))`;
  const errors = `sum by (namespace, service) (rate(${HTTP.count}{${userRoutes}, status_code=~"5.."}[5m]))`;
  const ready = queueGauge(RABBITMQ.ready, WORK_QUEUE);
  const growing = `deriv(${ready}[15m:1m]) > 0`;
  return [
    {
      name: "ndt-http",
      rules: [
        {
          alert: "HttpServerErrorRateHigh",
          // the rate guard keeps one failed request in a quiet minute from paging anyone
          expr: `(${errors} / ${requests}) > ${t.errorRatio} and ${requests} > 0.1`,
          for: "5m",
          labels: { severity: "critical" },
          annotations: {
            summary: "{{ $labels.service }}: more than " + `${t.errorRatio * 100}% of requests fail with 5xx`,
            description: "5xx ratio {{ $value | humanizePercentage }} over 5 minutes in {{ $labels.namespace }}.",
          },
        },
        {
          alert: "HttpLatencyP99High",
          expr: `histogram_quantile(0.99, sum by (namespace, service, le) (rate(${HTTP.bucket}{${userRoutes}}[5m]))) > ${t.p99Seconds}`,
          for: "10m",
          labels: { severity: "warning" },
          annotations: {
            summary: `{{ $labels.service }}: p99 latency above ${t.p99Seconds}s`,
            description: "p99 {{ $value | humanizeDuration }} over 5 minutes.",
          },
        },
      ],
    },
    {
      name: "ndt-queues",
      rules: [
        {
          alert: "DetectionQueueGrowing",
          expr: `(${growing}) and ${ready} > ${t.queueBacklog}`,
          for: "15m",
          labels: { severity: "warning" },
          annotations: {
            summary: `The ${WORK_QUEUE} queue keeps growing (above ${t.queueBacklog} ready messages)`,
            description: "{{ $value }} messages ready; the detectors are not keeping up or not scaling.",
          },
        },
        {
          alert: "DeadLetterQueueNotEmpty",
          expr: `${queueGauge(RABBITMQ.messages, DEAD_LETTER_QUEUE)} > 0`,
          for: "5m",
          labels: { severity: "warning" },
          annotations: {
            summary: `Messages in the dead-letter queue ${DEAD_LETTER_QUEUE}`,
            description: "{{ $value }} jobs exceeded their delivery limit; inspect them before they are purged.",
          },
        },
      ],
    },
    {
      name: "ndt-workloads",
      rules: [
        {
          alert: "PodRestartingOften",
          expr: `increase(${KUBE.restarts}{${app}}[15m]) > ${t.restarts}`,
          for: "5m",
          labels: { severity: "warning" },
          annotations: {
            summary: "{{ $labels.pod }}/{{ $labels.container }} restarts repeatedly",
            description: `More than ${t.restarts} restarts in 15 minutes ({{ $value }}).`,
          },
        },
        {
          alert: "GpuIdleWhileQueueGrows",
          // no GPU series at all counts as idle: the GPU group never came up from 0
          expr: `((avg(${DCGM.utilisation}) < ${t.gpuIdlePercent}) or on() absent(${DCGM.utilisation})) and on() (${growing})`,
          for: "15m",
          labels: { severity: "critical" },
          annotations: {
            summary: `GPUs idle while the ${WORK_QUEUE} queue grows`,
            description:
              "GPU utilisation below " +
              `${t.gpuIdlePercent}% (or no GPU) while work piles up: check KEDA, the autoscaler and the detector pods.`,
          },
        },
        {
          alert: "DetectorJobsFailing",
          expr: `sum(rate(${DETECTOR.failed}[10m])) > 0.1`,
          for: "10m",
          labels: { severity: "warning" },
          annotations: {
            summary: "Detection jobs are failing",
            description: "{{ $value }} failed jobs per second over 10 minutes.",
          },
        },
      ],
    },
  ];
}
