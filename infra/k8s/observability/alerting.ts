import { CLUSTER_SECRET_STORE } from "../names.js";
import { RECEIVER_SECRET_NAME } from "./names.js";

/** Where alerts go, per stack (Pulumi.<stack>.yaml `observability`); credentials only through `secretName`. */
export type ReceiverSettings =
  | { type: "slack"; channel: string; secretName: string }
  | { type: "email"; to: string; from: string; smarthost: string; username: string; secretName: string };

const ONCALL = "oncall";
const NULL = "null";

/** The key in the synced Kubernetes Secret (and the property in the Secrets Manager JSON) per receiver type. */
export const RECEIVER_SECRET_KEY = { slack: "url", email: "password" } as const;

/**
 * The ExternalSecret that syncs the receiver's credential from Secrets Manager into the monitoring namespace; the
 * Secrets Manager entry holds `{"url": ...}` (Slack) or `{"password": ...}` (SMTP).
 */
export function receiverExternalSecretSpec(receiver: ReceiverSettings) {
  const key = RECEIVER_SECRET_KEY[receiver.type];
  return {
    refreshInterval: "1h",
    secretStoreRef: { kind: "ClusterSecretStore", name: CLUSTER_SECRET_STORE },
    target: { name: RECEIVER_SECRET_NAME, creationPolicy: "Owner" },
    data: [{ secretKey: key, remoteRef: { key: receiver.secretName, property: key } }],
  };
}

/**
 * The global AlertmanagerConfig (monitoring.coreos.com/v1alpha1): everything to the stack's receiver, critical
 * alerts repeated hourly, the always-firing Watchdog dropped, warnings silenced while a critical alert of the same
 * name fires.
 */
export function alertmanagerConfigSpec(receiver: ReceiverSettings, environment: string) {
  const secret = { name: RECEIVER_SECRET_NAME, key: RECEIVER_SECRET_KEY[receiver.type] };
  const title = `[${environment}] {{ .CommonLabels.alertname }} ({{ .Status }})`;
  const text = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.description }}\n{{ end }}";
  const oncall =
    receiver.type === "slack"
      ? { name: ONCALL, slackConfigs: [{ apiURL: secret, channel: receiver.channel, sendResolved: true, title, text }] }
      : {
          name: ONCALL,
          emailConfigs: [
            {
              to: receiver.to,
              from: receiver.from,
              smarthost: receiver.smarthost,
              authUsername: receiver.username,
              authPassword: secret,
              requireTLS: true,
              sendResolved: true,
              headers: [{ key: "Subject", value: title }],
            },
          ],
        };
  return {
    route: {
      receiver: ONCALL,
      groupBy: ["alertname", "namespace", "service"],
      groupWait: "30s",
      groupInterval: "5m",
      repeatInterval: "4h",
      routes: [
        { receiver: NULL, matchers: [{ name: "alertname", value: "Watchdog|InfoInhibitor", matchType: "=~" }] },
        { receiver: ONCALL, matchers: [{ name: "severity", value: "critical", matchType: "=" }], repeatInterval: "1h" },
      ],
    },
    receivers: [oncall, { name: NULL }],
    inhibitRules: [
      {
        sourceMatch: [{ name: "severity", value: "critical", matchType: "=" }],
        targetMatch: [{ name: "severity", value: "warning", matchType: "=" }],
        equal: ["alertname", "namespace", "service"],
      },
    ],
  };
}
