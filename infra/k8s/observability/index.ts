export { alertmanagerConfigSpec, type ReceiverSettings, receiverExternalSecretSpec } from "./alerting.js";
export { DASHBOARDS, type Dashboard, dashboard, stat, timeseries } from "./dashboards.js";
export { Observability, type ObservabilityArgs } from "./observability.js";
export { expressionProblems, metricNames } from "./promql.js";
export { type AlertRule, DEFAULT_THRESHOLDS, platformRules } from "./rules.js";
