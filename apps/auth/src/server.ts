/** Starts the auth service: validated config, listen, graceful shutdown on SIGTERM/SIGINT. */
import { startService } from "@ndt/kit";
import { buildApp } from "./app.js";
import { loadAuthConfig } from "./config.js";

await startService(loadAuthConfig, (config) => buildApp({ config }));
