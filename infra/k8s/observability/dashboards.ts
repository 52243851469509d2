/**
 * Grafana dashboards built in TypeScript: typed panel and dashboard builders, laid out on Grafana's 24-column grid,
 * serialised to the JSON model the Grafana sidecar loads from labelled ConfigMaps. No pasted JSON.
 */
import { APP_NAMESPACE } from "../names.js";
import { DCGM, DEAD_LETTER_QUEUE, DETECTOR, HTTP, KUBE, queueGauge, RABBITMQ, WORK_QUEUE } from "./metrics.js";

export type Unit = "reqps" | "percentunit" | "percent" | "s" | "short" | "ops" | "bytes" | "decmbytes";

export interface Target {
  refId: string;
  expr: string;
  legendFormat: string;
}

export interface Panel {
  id: number;
  type: "timeseries" | "stat";
  title: string;
  datasource: { type: "prometheus"; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Target[];
  fieldConfig: { defaults: { unit: Unit }; overrides: [] };
  options: Record<string, unknown>;
}

export interface TemplateVariable {
  name: string;
  label: string;
  type: "query";
  query: string;
  datasource: { type: "prometheus"; uid: string };
  refresh: 2;
  includeAll: boolean;
  multi: boolean;
}

export interface Dashboard {
  uid: string;
  title: string;
  tags: string[];
  timezone: "utc";
  schemaVersion: 39;
  version: 1;
  editable: false;
  refresh: string;
  time: { from: string; to: string };
  templating: { list: TemplateVariable[] };
  panels: Panel[];
}

/** A panel before layout: what it shows, not where. */
export interface PanelSpec {
  type: Panel["type"];
  title: string;
  unit: Unit;
  queries: { expr: string; legend: string }[];
  /** Columns out of 24. @default 12 */
  width?: number;
}

const DATASOURCE = { type: "prometheus", uid: "prometheus" } as const;
const PANEL_HEIGHT = 8;

export const timeseries = (title: string, unit: Unit, ...queries: PanelSpec["queries"]): PanelSpec => ({
  type: "timeseries",
  title,
  unit,
  queries,
});

export const stat = (title: string, unit: Unit, expr: string, legend = title): PanelSpec => ({
  type: "stat",
  title,
  unit,
  queries: [{ expr, legend }],
  width: 6,
});

/** Lays panels left to right, wrapping at 24 columns, and numbers them. */
export function dashboard(args: {
  uid: string;
  title: string;
  tags?: string[];
  variables?: { name: string; label: string; query: string; multi?: boolean }[];
  panels: PanelSpec[];
}): Dashboard {
  let x = 0;
  let y = 0;
  const panels = args.panels.map((spec, index): Panel => {
    const w = spec.width ?? 12;
    if (x + w > 24) {
      x = 0;
      y += PANEL_HEIGHT;
    }
    const panel: Panel = {
      id: index + 1,
      type: spec.type,
      title: spec.title,
      datasource: DATASOURCE,
      gridPos: { x, y, w, h: PANEL_HEIGHT },
      targets: spec.queries.map((query, q) => ({
        refId: String.fromCharCode(65 + q),
        expr: query.expr,
        legendFormat: query.legend,
      })),
      fieldConfig: { defaults: { unit: spec.unit }, overrides: [] },
      options:
        spec.type === "stat"
          ? { reduceOptions: { calcs: ["lastNotNull"] }, colorMode: "value" }
          : { legend: { displayMode: "list", placement: "bottom" }, tooltip: { mode: "multi" } },
    };
    x += w;
    return panel;
  });
  return {
    uid: args.uid,
    title: args.title,
    tags: ["ndt", ...(args.tags ?? [])],
    timezone: "utc",
    schemaVersion: 39,
    version: 1,
    editable: false,
    refresh: "30s",
    time: { from: "now-6h", to: "now" },
    templating: {
      list: (args.variables ?? []).map((variable) => ({
        name: variable.name,
        label: variable.label,
        type: "query",
        query: variable.query,
        datasource: DATASOURCE,
        refresh: 2,
        includeAll: variable.multi ?? false,
        multi: variable.multi ?? false,
      })),
    },
    panels,
  };
}

const app = `namespace="${APP_NAMESPACE}"`;
const users = `${app}, route!~"/healthz|/readyz|/metrics"`;
const p = (quantile: number, bucket: string, selector: string, by = "le") =>
  `histogram_quantile(${quantile}, sum by (${by}) (rate(${bucket}{${selector}}[5m])))`;

/** The whole platform at a glance. */
export function platformOverview(): Dashboard {
  return dashboard({
    uid: "ndt-platform-overview",
    title: "NDT platform overview",
    tags: ["overview"],
    panels: [
      stat("Requests per second", "reqps", `sum(rate(${HTTP.count}{${users}}[5m]))`),
      stat(
        "5xx ratio",
        "percentunit",
        `sum(rate(${HTTP.count}{${users}, status_code=~"5.."}[5m])) / sum(rate(${HTTP.count}{${users}}[5m]))`,
      ),
      stat("Detections queue", "short", queueGauge(RABBITMQ.ready, WORK_QUEUE)),
      stat("Dead-letter queue", "short", queueGauge(RABBITMQ.messages, DEAD_LETTER_QUEUE)),
      timeseries("Requests per second by service", "reqps", {
        expr: `sum by (service) (rate(${HTTP.count}{${users}}[5m]))`,
        legend: "{{service}}",
      }),
      timeseries("p99 latency by service", "s", {
        expr: p(0.99, HTTP.bucket, users, "service, le"),
        legend: "{{service}}",
      }),
      timeseries("Pod restarts (15m)", "short", {
        expr: `sum by (pod) (increase(${KUBE.restarts}{${app}}[15m]))`,
        legend: "{{pod}}",
      }),
      timeseries("GPU utilisation", "percent", {
        expr: `avg by (Hostname) (${DCGM.utilisation})`,
        legend: "{{Hostname}}",
      }),
    ],
  });
}

/** Rate, errors and duration of one service (a template variable), by route. */
export function serviceRed(): Dashboard {
  const svc = `${users}, service=~"$service"`;
  return dashboard({
    uid: "ndt-service-red",
    title: "NDT service RED",
    tags: ["red"],
    variables: [
      { name: "service", label: "Service", query: `label_values(${HTTP.count}{${app}}, service)`, multi: true },
    ],
    panels: [
      timeseries("Rate by route", "reqps", {
        expr: `sum by (route) (rate(${HTTP.count}{${svc}}[5m]))`,
        legend: "{{route}}",
      }),
      timeseries("Errors (5xx) by route", "reqps", {
        expr: `sum by (route) (rate(${HTTP.count}{${svc}, status_code=~"5.."}[5m]))`,
        legend: "{{route}}",
      }),
      timeseries(
        "Duration p50 / p90 / p99",
        "s",
        { expr: p(0.5, HTTP.bucket, svc), legend: "p50" },
        { expr: p(0.9, HTTP.bucket, svc), legend: "p90" },
        { expr: p(0.99, HTTP.bucket, svc), legend: "p99" },
      ),
      timeseries("4xx by route", "reqps", {
        expr: `sum by (route) (rate(${HTTP.count}{${svc}, status_code=~"4.."}[5m]))`,
        legend: "{{route}}",
      }),
    ],
  });
}

/** The detection worker: throughput, latency, batch size, GPU and the queue that drives it. */
export function detector(): Dashboard {
  return dashboard({
    uid: "ndt-detector",
    title: "NDT detector",
    tags: ["detector", "gpu"],
    panels: [
      timeseries(
        "Throughput (images/s)",
        "ops",
        { expr: `sum(rate(${DETECTOR.processed}[5m]))`, legend: "processed" },
        { expr: `sum(rate(${DETECTOR.failed}[5m]))`, legend: "failed" },
      ),
      timeseries(
        "Inference latency",
        "s",
        { expr: p(0.5, DETECTOR.inferenceBucket, app), legend: "p50" },
        { expr: p(0.99, DETECTOR.inferenceBucket, app), legend: "p99" },
      ),
      timeseries(
        "Batch size",
        "short",
        { expr: p(0.5, DETECTOR.batchSizeBucket, app), legend: "p50" },
        {
          expr: `sum(rate(${DETECTOR.batchSize}_sum[5m])) / sum(rate(${DETECTOR.batchSize}_count[5m]))`,
          legend: "mean",
        },
      ),
      timeseries("GPU utilisation", "percent", {
        expr: `avg by (Hostname, gpu) (${DCGM.utilisation})`,
        legend: "{{Hostname}}/{{gpu}}",
      }),
      timeseries("GPU memory used", "decmbytes", {
        expr: `sum by (Hostname) (${DCGM.memoryUsed})`,
        legend: "{{Hostname}}",
      }),
      timeseries(
        "Detections queue",
        "short",
        { expr: queueGauge(RABBITMQ.ready, WORK_QUEUE), legend: "ready" },
        { expr: queueGauge(RABBITMQ.consumers, WORK_QUEUE), legend: "consumers" },
      ),
    ],
  });
}

export const DASHBOARDS = { "platform-overview": platformOverview, "service-red": serviceRed, detector } as const;
