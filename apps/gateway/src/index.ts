export { type BuildOptions, buildApp } from "./app.js";
export { type GatewayConfig, GatewayConfigSchema, loadGatewayConfig } from "./config.js";
