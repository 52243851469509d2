import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { CHARTS } from "../addons/charts.js";
import type { RabbitmqExporterValues } from "../addons/values.js";
import { CLUSTER_SECRET_STORE, MONITORING_NAMESPACE, SERVICE_MONITOR_LABELS } from "../names.js";
import { alertmanagerConfigSpec, type ReceiverSettings, receiverExternalSecretSpec } from "./alerting.js";
import { DASHBOARDS } from "./dashboards.js";
import { ALERTMANAGER_CONFIG_NAME, DASHBOARD_FOLDER_ANNOTATION, DASHBOARD_LABEL } from "./names.js";
import { type AlertThresholds, DEFAULT_THRESHOLDS, platformRules } from "./rules.js";

export interface ObservabilityArgs {
  provider: k8s.Provider;
  environment: "dev" | "prod";
  /** Where alerts go; the credential is synced from Secrets Manager, never passed as a value. */
  receiver: ReceiverSettings;
  /**
   * The broker's management API and credentials secret: the queue-depth exporter reads both. Without it the queue
   * alerts have no data (and stay silent).
   */
  broker?: { managementUrl: pulumi.Input<string>; secretArn: pulumi.Input<string> };
  /**
   * Replicas of the queue exporter. It is stateless (it polls the management API), so prod runs two, spread over
   * zones, with a PodDisruptionBudget: a drained node does not leave the queue alerts without data.
   * @default 1
   */
  exporterReplicas?: number;
  /** @default DEFAULT_THRESHOLDS */
  thresholds?: AlertThresholds;
}

/**
 * Observability as code on top of the kube-prometheus-stack add-on: the global AlertmanagerConfig routed to the
 * stack's receiver (its credential synced by an ExternalSecret), the platform's PrometheusRules, the Grafana
 * dashboards as sidecar-labelled ConfigMaps, and the RabbitMQ queue exporter the queue alerts read.
 *
 * Cost: nothing beyond the add-ons' Prometheus and Grafana; the exporter is a 50m/64Mi pod per replica.
 */
export class Observability extends pulumi.ComponentResource {
  constructor(name: string, args: ObservabilityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:Observability", name, {}, opts);
    const k8sOpts = { parent: this, provider: args.provider };
    const namespace = MONITORING_NAMESPACE;

    createAlerting();
    createRules();
    createDashboards();
    if (args.broker) createQueueExporter(args.broker);
    this.registerOutputs({});

    function createAlerting(): void {
      const secret = new k8s.apiextensions.CustomResource(
        `${name}-receiver-secret`,
        {
          apiVersion: "external-secrets.io/v1",
          kind: "ExternalSecret",
          metadata: { name: "alertmanager-receiver", namespace },
          spec: receiverExternalSecretSpec(args.receiver),
        },
        k8sOpts,
      );
      new k8s.apiextensions.CustomResource(
        `${name}-alertmanager-config`,
        {
          apiVersion: "monitoring.coreos.com/v1alpha1",
          kind: "AlertmanagerConfig",
          metadata: { name: ALERTMANAGER_CONFIG_NAME, namespace },
          spec: alertmanagerConfigSpec(args.receiver, args.environment),
        },
        { ...k8sOpts, dependsOn: [secret] },
      );
    }

    function createRules(): void {
      new k8s.apiextensions.CustomResource(
        `${name}-rules`,
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind: "PrometheusRule",
          metadata: { name: "ndt-platform", namespace, labels: { ...SERVICE_MONITOR_LABELS } },
          spec: { groups: platformRules(args.thresholds ?? DEFAULT_THRESHOLDS) },
        },
        k8sOpts,
      );
    }

    function createDashboards(): void {
      for (const [key, build] of Object.entries(DASHBOARDS)) {
        new k8s.core.v1.ConfigMap(
          `${name}-dashboard-${key}`,
          {
            metadata: {
              name: `dashboard-${key}`,
              namespace,
              labels: { [DASHBOARD_LABEL.key]: DASHBOARD_LABEL.value },
              annotations: { [DASHBOARD_FOLDER_ANNOTATION]: "NDT" },
            },
            data: { [`${key}.json`]: JSON.stringify(build(), null, 2) },
          },
          k8sOpts,
        );
      }
    }

    function createQueueExporter(broker: NonNullable<ObservabilityArgs["broker"]>): void {
      const credentials = new k8s.apiextensions.CustomResource(
        `${name}-rabbitmq-credentials`,
        {
          apiVersion: "external-secrets.io/v1",
          kind: "ExternalSecret",
          metadata: { name: "rabbitmq-exporter-credentials", namespace },
          spec: {
            refreshInterval: "1h",
            secretStoreRef: { kind: "ClusterSecretStore", name: CLUSTER_SECRET_STORE },
            target: { name: "rabbitmq-exporter-credentials", creationPolicy: "Owner" },
            data: ["username", "password"].map((key) => ({
              secretKey: key,
              remoteRef: { key: broker.secretArn, property: key },
            })),
          },
        },
        k8sOpts,
      );
      const replicas = args.exporterReplicas ?? 1;
      // The chart's pod labels (its name and the release's): the PodDisruptionBudget and the spread select them.
      const pods = { app: CHARTS.rabbitmqExporter.chart, release: EXPORTER_RELEASE };
      const values: RabbitmqExporterValues = {
        replicaCount: replicas,
        affinity: {
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              {
                weight: 100,
                podAffinityTerm: { topologyKey: "topology.kubernetes.io/zone", labelSelector: { matchLabels: pods } },
              },
            ],
          },
        },
        rabbitmq: {
          url: broker.managementUrl,
          existingUserSecret: "rabbitmq-exporter-credentials",
          existingUserSecretKey: "username",
          existingPasswordSecret: "rabbitmq-exporter-credentials",
          existingPasswordSecretKey: "password",
          capabilities: "bert,no_sort",
          include_queues: ".*",
          skip_verify: "false",
        },
        prometheus: { monitor: { enabled: true, additionalLabels: { ...SERVICE_MONITOR_LABELS } } },
        resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "128Mi" } },
      };
      const source = CHARTS.rabbitmqExporter;
      new k8s.helm.v3.Release(
        `${name}-rabbitmq-exporter`,
        {
          name: EXPORTER_RELEASE,
          chart: source.chart,
          version: source.version,
          repositoryOpts: { repo: source.repository },
          namespace,
          values,
          atomic: true,
          cleanupOnFail: true,
          maxHistory: 5,
        },
        { ...k8sOpts, dependsOn: [credentials] },
      );
      // The chart renders no budget of its own.
      if (replicas > 1) {
        new k8s.policy.v1.PodDisruptionBudget(
          `${name}-rabbitmq-exporter-pdb`,
          {
            metadata: { name: EXPORTER_RELEASE, namespace },
            spec: { maxUnavailable: 1, selector: { matchLabels: pods } },
          },
          k8sOpts,
        );
      }
    }
  }
}

/** The queue exporter's Helm release name (its pods carry it as `release`). */
const EXPORTER_RELEASE = "rabbitmq-exporter";
