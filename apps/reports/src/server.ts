/** Starts the reports service: validated config, listen, graceful shutdown on SIGTERM/SIGINT. */
import { startService } from "@ndt/kit";
import { buildApp } from "./app.js";
import { loadReportsConfig } from "./config.js";

await startService(loadReportsConfig, (config) => buildApp({ config }));
