export { type BuildOptions, buildApp, type FilesDeps, MIGRATIONS_DIR } from "./app.js";
export { type FilesConfig, FilesConfigSchema, loadFilesConfig } from "./config.js";
export { type DetectionJob, OutboxRelay } from "./relay.js";
export { sniffImageType } from "./upload.js";
