export { type AuthDeps, type BuildOptions, buildApp, MIGRATIONS_DIR } from "./app.js";
export { type AuthConfig, AuthConfigSchema, loadAuthConfig } from "./config.js";
