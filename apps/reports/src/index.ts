export { type BuildOptions, buildApp, type ReportsDeps } from "./app.js";
export { loadReportsConfig, type ReportsConfig, ReportsConfigSchema } from "./config.js";
export * from "./model.js";
export {
  CLASS_COLOURS,
  DEFAULT_RENDER_SETTINGS,
  type ImageLoader,
  renderReport,
  renderReportToBuffer,
} from "./render.js";
export { PDF_CONTENT_TYPE, ReportService } from "./reports.js";
export { ReportsStore } from "./store.js";
