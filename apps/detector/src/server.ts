/**
 * The detection worker's process (the image runs `node dist/server.js`): validated config, /healthz /readyz
 * /metrics on PORT at once, then the model and the queue; graceful shutdown on SIGTERM/SIGINT returns unfinished
 * jobs to the queue. A model that cannot load ends the process (exit 1) so the pod restarts and says why.
 */
import { ConfigError, runService } from "@ndt/kit";
import { buildWorker } from "./app.js";
import { loadDetectorConfig } from "./config.js";

try {
  const config = loadDetectorConfig();
  const worker = await buildWorker({ config });
  const running = await runService(worker.app, {
    host: config.HOST,
    port: config.PORT,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    delayMs: config.SHUTDOWN_DELAY_MS,
  });
  worker.start().catch(async (err: unknown) => {
    worker.app.log.fatal({ err }, "cannot start the detection worker");
    await running.shutdown("startup failed");
    process.exit(1);
  });
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
