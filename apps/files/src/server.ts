/** Starts the files service: validated config, listen, graceful shutdown on SIGTERM/SIGINT. */
import { startService } from "@ndt/kit";
import { buildApp } from "./app.js";
import { loadFilesConfig } from "./config.js";

await startService(loadFilesConfig, (config) => buildApp({ config }));
