/** Starts the gateway: validated config, listen, graceful shutdown on SIGTERM/SIGINT. */
import { startService } from "@ndt/kit";
import { buildApp } from "./app.js";
import { loadGatewayConfig } from "./config.js";

await startService(loadGatewayConfig, (config) => buildApp({ config }));
