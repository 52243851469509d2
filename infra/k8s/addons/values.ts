/**
 * The values the platform sets on each chart, typed: only the keys we set, named as each chart's values.yaml names
 * them, so a typo is a compile error and a review reads the intent. Everything else is the chart's default.
 */
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

export interface Resources {
  requests: { cpu: string; memory: string };
  limits?: { memory: string };
}

export interface Toleration {
  key?: string;
  operator: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export interface TopologySpreadConstraint {
  maxSkew: number;
  topologyKey: string;
  whenUnsatisfiable: "DoNotSchedule" | "ScheduleAnyway";
  labelSelector: { matchLabels: Record<string, string> };
}

/** IRSA: the role a chart's ServiceAccount assumes. */
export interface ServiceAccountValues {
  create?: boolean;
  name?: string;
  annotations: { "eks.amazonaws.com/role-arn": pulumi.Input<string> };
}

/**
 * A chart's own PodDisruptionBudget switch, as cert-manager, External Secrets and kube-prometheus-stack name it: on
 * with 2+ replicas, one limit set (the charts render both when both are set).
 */
export type ChartBudget = { enabled: true; minAvailable: 1 } | { enabled: false };

/** kube-prometheus-stack's Prometheus selects ServiceMonitors by this label. */
export interface ServiceMonitorToggle {
  enabled: boolean;
  additionalLabels?: Record<string, string>;
  interval?: string;
}

export interface IngressNginxValues {
  controller: {
    ingressClass: string;
    ingressClassResource: { name: string; enabled: true; default: boolean; controllerValue: string };
    replicaCount: number;
    minAvailable: number;
    allowSnippetAnnotations: false;
    config: Record<string, string>;
    service: {
      type: "LoadBalancer";
      /**
       * The AWS Load Balancer Controller's class: it provisions the NLB, and EKS's in-tree controller leaves a Service
       * of another class alone. Kubernetes refuses to change a LoadBalancer Service's class once it exists.
       */
      loadBalancerClass: "service.k8s.aws/nlb";
      externalTrafficPolicy: "Local" | "Cluster";
      annotations: Record<string, string>;
      ports: { http: number; https: number };
    };
    metrics: { enabled: boolean; serviceMonitor: ServiceMonitorToggle };
    resources: Resources;
    topologySpreadConstraints: TopologySpreadConstraint[];
  };
}

/** kubernetes-sigs/aws-load-balancer-controller (eks-charts): NLBs for LoadBalancer Services, nothing else. */
export interface AwsLoadBalancerControllerValues {
  clusterName: string;
  /** Region and VPC given: pods cannot read them from IMDS (hop limit 1, A4). */
  region: string;
  vpcId: pulumi.Input<string>;
  replicaCount: number;
  /** Rendered only when replicaCount > 1. */
  podDisruptionBudget: { maxUnavailable: number } | Record<string, never>;
  serviceAccount: ServiceAccountValues & { create: true; name: string };
  /**
   * false: the controller does not stamp its class on every new LoadBalancer Service (a cluster-wide admission
   * webhook); a Service opts in by naming the class or `aws-load-balancer-type: external`.
   */
  enableServiceMutatorWebhook: false;
  /** Target type for a Service that names none: pod IPs, never NodePorts. */
  defaultTargetType: "ip";
  /** One shared backend group per cluster, admitted by the nodes' group on the target ports only. */
  enableBackendSecurityGroup: true;
  disableRestrictedSecurityGroupRules: false;
  /** No ALB IngressClass and no `kubernetes.io/ingress.class: alb`: ingress-nginx serves every Ingress. */
  createIngressClassResource: false;
  disableIngressClassAnnotation: true;
  /** ALB-only integrations, unused with NLBs. */
  enableShield: false;
  enableWaf: false;
  enableWafv2: false;
  /** Keep the webhook certificate across upgrades instead of re-issuing it on every `helm upgrade`. */
  keepTLSSecret: true;
  serviceMonitor: ServiceMonitorToggle;
  resources: Resources;
}

export interface CertManagerValues {
  crds: { enabled: true; keep: true };
  replicaCount: number;
  podDisruptionBudget: ChartBudget;
  serviceAccount: ServiceAccountValues;
  /** IRSA tokens are readable by the controller's group. */
  securityContext: { fsGroup: number; runAsNonRoot: true; seccompProfile: { type: "RuntimeDefault" } };
  prometheus: { enabled: true; servicemonitor: { enabled: boolean; labels: Record<string, string> } };
  webhook: { replicaCount: number; podDisruptionBudget: ChartBudget };
  cainjector: { replicaCount: number; podDisruptionBudget: ChartBudget };
  resources: Resources;
}

export interface ExternalDnsValues {
  provider: { name: "aws" };
  env: { name: string; value: string }[];
  domainFilters: string[];
  /** `sync` deletes the records it created when their Ingress goes; TXT ownership keeps it off anyone else's. */
  policy: "sync" | "upsert-only";
  registry: "txt";
  txtOwnerId: string;
  sources: ("ingress" | "service")[];
  extraArgs: string[];
  serviceAccount: ServiceAccountValues;
  serviceMonitor: ServiceMonitorToggle;
  resources: Resources;
}

export interface ExternalSecretsValues {
  installCRDs: true;
  replicaCount: number;
  /** The chart's default is false: replicas (and a rollout's old and new pod) would all sync every ExternalSecret. */
  leaderElect: true;
  podDisruptionBudget: ChartBudget;
  serviceAccount: ServiceAccountValues & { name: string };
  serviceMonitor: ServiceMonitorToggle;
  webhook: { replicaCount: number; podDisruptionBudget: ChartBudget };
  resources: Resources;
}

/** A KEDA budget is rendered whenever its map is non-empty (no `enabled` switch). */
export type KedaBudget = { minAvailable: 1 } | Record<string, never>;

export interface KedaValues {
  operator: { replicaCount: number };
  /** The metrics apiserver (the chart's keys: `metricsServer` here, `metricServer` for budget and resources). */
  metricsServer: { replicaCount: number };
  /** The admission webhooks (validation of ScaledObjects), on by default. */
  webhooks: { replicaCount: number };
  podDisruptionBudget: { operator: KedaBudget; metricServer: KedaBudget; webhooks: KedaBudget };
  prometheus: {
    operator: { enabled: true; serviceMonitor: ServiceMonitorToggle };
    metricServer: { enabled: true; serviceMonitor: ServiceMonitorToggle };
  };
  resources: { operator: Resources; metricServer: Resources };
}

export interface MetricsServerValues {
  replicas: number;
  podDisruptionBudget: { enabled: boolean; minAvailable?: number };
  resources: Resources;
}

export interface NvidiaDevicePluginValues {
  nodeSelector: Record<string, string>;
  tolerations: Toleration[];
  priorityClassName: "system-node-critical";
  gfd: { enabled: false };
  failOnInitError: true;
}

export interface DcgmExporterValues {
  nodeSelector: Record<string, string>;
  tolerations: Toleration[];
  serviceMonitor: ServiceMonitorToggle;
  resources: Resources;
}

export interface ClusterAutoscalerValues {
  cloudProvider: "aws";
  awsRegion: string;
  autoDiscovery: { clusterName: string };
  image: { tag: string };
  replicaCount: number;
  /** Rendered whenever set (the chart's default is this one). */
  podDisruptionBudget: { maxUnavailable: number };
  topologySpreadConstraints: TopologySpreadConstraint[];
  rbac: {
    serviceAccount: { create: true; name: string; annotations: { "eks.amazonaws.com/role-arn": pulumi.Input<string> } };
  };
  extraArgs: Record<string, string | boolean>;
  serviceMonitor: ServiceMonitorToggle & { namespace: string; selector: Record<string, string> };
  resources: Resources;
}

export interface KubePrometheusStackValues {
  prometheus: {
    prometheusSpec: {
      replicas: number;
      retention: string;
      /** true: Prometheus picks up ServiceMonitors/PrometheusRules labelled `release: <this release>` only. */
      serviceMonitorSelectorNilUsesHelmValues: true;
      ruleSelectorNilUsesHelmValues: true;
      storageSpec: {
        volumeClaimTemplate: {
          spec: {
            storageClassName: string;
            accessModes: ["ReadWriteOnce"];
            resources: { requests: { storage: `${number}Gi` } };
          };
        };
      };
      resources: Resources;
    };
    podDisruptionBudget: ChartBudget;
  };
  alertmanager: {
    alertmanagerSpec: {
      replicas: number;
      /** The global AlertmanagerConfig (infra/k8s/observability) that routes every alert. */
      alertmanagerConfiguration: { name: string };
      resources: Resources;
    };
    podDisruptionBudget: ChartBudget;
  };
  grafana: {
    /** 1: its SQLite database is per pod; more replicas need a shared database first (K7 exception). */
    replicas: 1;
    /** The Secret External Secrets syncs (K11); never `adminPassword`. */
    admin: { existingSecret: string; userKey: string; passwordKey: string };
    sidecar: {
      dashboards: {
        enabled: true;
        label: string;
        labelValue: string;
        searchNamespace: string;
        folderAnnotation: string;
        provider: { foldersFromFilesStructure: true };
      };
    };
    resources: Resources;
  };
}

export interface AwsForFluentBitValues {
  cloudWatchLogs: {
    enabled: true;
    region: string;
    logGroupName: pulumi.Input<string>;
    logStreamPrefix: string;
    /** The log group is Pulumi's (retention, KMS); the agent never creates one. */
    autoCreateGroup: false;
  };
  cloudWatch: { enabled: false };
  firehose: { enabled: false };
  kinesis: { enabled: false };
  elasticsearch: { enabled: false };
  serviceAccount: ServiceAccountValues & { create: true; name: string };
  /** Logs from every node, the tainted GPU nodes included. */
  tolerations: Toleration[];
  resources: Resources;
}

export interface RabbitmqExporterValues {
  replicaCount: number;
  /** The chart has no topology spread value: zones are spread through pod anti-affinity. */
  affinity: k8s.types.input.core.v1.Affinity;
  rabbitmq: {
    url: pulumi.Input<string>;
    /** Kubernetes Secret (synced from Secrets Manager) with the management API credentials. */
    existingUserSecret: string;
    existingUserSecretKey: string;
    existingPasswordSecret: string;
    existingPasswordSecretKey: string;
    capabilities: string;
    include_queues: string;
    skip_verify: "false";
  };
  prometheus: { monitor: { enabled: true; additionalLabels: Record<string, string> } };
  resources: Resources;
}
