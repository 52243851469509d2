/**
 * Liveness and readiness. `/healthz` answers from the process alone (the K8s liveness probe must not restart a pod
 * because a database is slow); `/readyz` runs every registered dependency check and fails as soon as shutdown
 * begins, so traffic is drained away before the listener closes.
 */
import type { FastifyPluginAsync } from "fastify";
import fp from "fastify-plugin";

export type ReadinessCheck = () => Promise<void>;

export interface Health {
  /** Register a dependency check run by `/readyz`; it should throw (or reject) when the dependency is unusable. */
  addCheck(name: string, check: ReadinessCheck): void;
  /** Make `/readyz` fail from now on (first step of graceful shutdown). */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
  /** Run every check; `ok` is false when any fails or shutdown began. */
  check(): Promise<{ ok: boolean; checks: Record<string, "ok" | "fail"> }>;
}

declare module "fastify" {
  interface FastifyInstance {
    health: Health;
  }
}

export interface HealthOptions {
  /** Each readiness check is failed after this long. @default 2000 */
  checkTimeoutMs?: number;
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const plugin: FastifyPluginAsync<HealthOptions> = async (app, opts) => {
  const checks = new Map<string, ReadinessCheck>();
  const timeoutMs = opts.checkTimeoutMs ?? 2000;
  let shuttingDown = false;

  const health: Health = {
    addCheck: (name, check) => void checks.set(name, check),
    markShuttingDown: () => {
      shuttingDown = true;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    async check() {
      const results: Record<string, "ok" | "fail"> = {};
      await Promise.all(
        [...checks].map(async ([name, check]) => {
          try {
            await withTimeout(check(), timeoutMs);
            results[name] = "ok";
          } catch (err) {
            app.log.warn({ err, check: name }, "readiness check failed");
            results[name] = "fail";
          }
        }),
      );
      return { ok: !shuttingDown && Object.values(results).every((r) => r === "ok"), checks: results };
    },
  };
  app.decorate("health", health);

  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    if (shuttingDown) return reply.code(503).send({ status: "shutting_down", checks: {} });
    const result = await health.check();
    return reply.code(result.ok ? 200 : 503).send({ status: result.ok ? "ok" : "unavailable", checks: result.checks });
  });
};

export const healthPlugin = fp(plugin, { name: "ndt-health", fastify: "5.x" });
