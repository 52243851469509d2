/**
 * Prometheus metrics (`prom-client`): RED per route (rate and errors from the histogram's count by status code,
 * duration from its buckets), process and Node runtime metrics including event-loop lag. One registry per app so
 * several apps can live in one process (tests, local stack).
 */
import type { FastifyPluginAsync } from "fastify";
import fp from "fastify-plugin";
import { collectDefaultMetrics, Histogram, Registry } from "prom-client";

declare module "fastify" {
  interface FastifyInstance {
    /** The app's metrics registry; services add their own metrics to it. */
    metrics: Registry;
  }
}

export interface MetricsOptions {
  /** Added to every metric as `service="<name>"`. */
  service: string;
  /** Event-loop delay sampling interval, ms. @default 10 */
  eventLoopResolutionMs?: number;
}

const plugin: FastifyPluginAsync<MetricsOptions> = async (app, opts) => {
  const registry = new Registry();
  registry.setDefaultLabels({ service: opts.service });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: opts.eventLoopResolutionMs ?? 10 });
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request duration by method, route template and status code",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  app.decorate("metrics", registry);

  app.addHook("onResponse", async (request, reply) => {
    // the route template, never the raw URL: keeps label cardinality bounded
    const route = request.routeOptions.url ?? "unmatched";
    duration.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
};

export const metricsPlugin = fp(plugin, { name: "ndt-metrics", fastify: "5.x" });
