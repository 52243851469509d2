/**
 * Listening and graceful shutdown, for a service's `server.ts`.
 *
 * On SIGTERM/SIGINT (or `shutdown()`): readiness fails first (`/readyz` → 503), then after `delayMs` (time for the
 * load balancer to notice) the listener closes: no new connections, requests already accepted run to completion
 * and get `connection: close`, idle keep-alive sockets close, then the app's `onClose` hooks close pools and
 * clients. If all that takes longer than `timeoutMs` the remaining sockets are destroyed and the process exits 1.
 */
import { ConfigError } from "../config.js";
import type { ServiceApp } from "./service.js";

export interface RunOptions {
  host: string;
  port: number;
  /** Exit anyway after this long. */
  timeoutMs: number;
  /** Pause between failing readiness and closing the listener. */
  delayMs?: number;
  /** Install SIGTERM/SIGINT handlers and exit the process when done. @default true */
  handleSignals?: boolean;
}

export interface RunningService {
  /** The bound address, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** Graceful shutdown; resolves `true` when it finished within the bound. */
  shutdown(reason?: string): Promise<boolean>;
}

export async function runService(app: ServiceApp, opts: RunOptions): Promise<RunningService> {
  const url = await app.listen({ host: opts.host, port: opts.port });
  let closing: Promise<boolean> | undefined;

  const shutdown = (reason = "shutdown"): Promise<boolean> => {
    closing ??= (async () => {
      app.log.info({ reason }, "shutting down: readiness failing, draining");
      app.health.markShuttingDown();
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), opts.timeoutMs);
      });
      const finished = await Promise.race([app.close().then(() => true as const), bound]);
      clearTimeout(timer);
      if (!finished) {
        app.log.error({ timeoutMs: opts.timeoutMs }, "shutdown bound reached: dropping remaining connections");
        app.server.closeAllConnections();
      } else {
        app.log.info("shutdown complete");
      }
      return finished;
    })();
    return closing;
  };

  if (opts.handleSignals ?? true) {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.once(signal, () => {
        void shutdown(signal).then((ok) => process.exit(ok ? 0 : 1));
      });
    }
  }
  return { url, shutdown };
}

/** The settings `startService` listens and drains with (kit's `HttpConfig`). */
export interface ListenSettings {
  HOST: string;
  PORT: number;
  SHUTDOWN_TIMEOUT_MS: number;
  SHUTDOWN_DELAY_MS: number;
}

/**
 * A service process's entry (`src/server.ts`): load the validated config, build the app, listen with graceful
 * shutdown. A bad config prints its one message naming every bad variable; any start-up failure exits 1.
 */
export async function startService<C extends ListenSettings>(
  loadConfig: () => C,
  build: (config: C) => Promise<ServiceApp>,
): Promise<{ config: C; app: ServiceApp; running: RunningService }> {
  try {
    const config = loadConfig();
    const app = await build(config);
    const running = await runService(app, {
      host: config.HOST,
      port: config.PORT,
      timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      delayMs: config.SHUTDOWN_DELAY_MS,
    });
    return { config, app, running };
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  }
}
