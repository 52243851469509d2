/** Starts the reports service: validated config, listen, graceful shutdown on SIGTERM/SIGINT. */
import { ConfigError, runService } from "@ndt/kit";
import { buildApp } from "./app.js";
import { loadReportsConfig } from "./config.js";

try {
  const config = loadReportsConfig();
  const app = await buildApp({ config });
  await runService(app, {
    host: config.HOST,
    port: config.PORT,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    delayMs: config.SHUTDOWN_DELAY_MS,
  });
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
