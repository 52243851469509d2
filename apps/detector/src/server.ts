/**
 * The detection worker's process (the image runs `node dist/server.js`): validated config, /healthz /readyz
 * /metrics on PORT at once, then the model and the queue; graceful shutdown on SIGTERM/SIGINT returns unfinished
 * jobs to the queue. A model that cannot load ends the process (exit 1) so the pod restarts and says why.
 */
import { startService } from "@ndt/kit";
import { buildWorker, type DetectorWorker } from "./app.js";
import { loadDetectorConfig } from "./config.js";

// set by the build step, which startService awaits before it returns
let worker!: DetectorWorker;
const { running } = await startService(loadDetectorConfig, async (config) => {
  worker = await buildWorker({ config });
  return worker.app;
});
// probes answer from here on; the model and the queue come up behind /readyz
worker.start().catch(async (err: unknown) => {
  worker.app.log.fatal({ err }, "cannot start the detection worker");
  await running.shutdown("startup failed");
  process.exit(1);
});
