/** Names observability shares with the kube-prometheus-stack add-on that runs it. */

/** The global AlertmanagerConfig: Alertmanager routes every alert by it (add-ons point the chart at this name). */
export const ALERTMANAGER_CONFIG_NAME = "ndt-alerting";
/** The Kubernetes Secret (synced from Secrets Manager) holding the receiver's credential. */
export const RECEIVER_SECRET_NAME = "alertmanager-receiver";

/** Grafana's dashboard sidecar loads every ConfigMap carrying this label, into the folder named by the annotation. */
export const DASHBOARD_LABEL = { key: "grafana_dashboard", value: "1" } as const;
export const DASHBOARD_FOLDER_ANNOTATION = "grafana_folder";
