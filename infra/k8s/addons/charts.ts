/**
 * Every Helm chart the platform installs, pinned to an exact version in one table, so a bump is one reviewed line
 * and the plan shows what would change. Versions were current stable releases when pinned; bump them here only
 * after reading the chart's upgrade notes (CRD changes above all: cert-manager, external-secrets, kube-prometheus-stack).
 */

export interface ChartSource {
  /** Chart name in its repository. */
  chart: string;
  /** An exact version, never a range: the same inputs must install the same thing. */
  version: string;
  /** The chart repository (Helm `repo add` URL). */
  repository: string;
}

export const CHARTS = {
  ingressNginx: {
    chart: "ingress-nginx",
    version: "4.13.3",
    repository: "https://kubernetes.github.io/ingress-nginx",
  },
  certManager: { chart: "cert-manager", version: "v1.18.2", repository: "https://charts.jetstack.io" },
  externalDns: {
    chart: "external-dns",
    version: "1.18.0",
    repository: "https://kubernetes-sigs.github.io/external-dns",
  },
  externalSecrets: {
    chart: "external-secrets",
    version: "0.19.2",
    repository: "https://charts.external-secrets.io",
  },
  keda: { chart: "keda", version: "2.17.2", repository: "https://kedacore.github.io/charts" },
  metricsServer: {
    chart: "metrics-server",
    version: "3.13.0",
    repository: "https://kubernetes-sigs.github.io/metrics-server",
  },
  nvidiaDevicePlugin: {
    chart: "nvidia-device-plugin",
    version: "0.17.4",
    repository: "https://nvidia.github.io/k8s-device-plugin",
  },
  dcgmExporter: {
    chart: "dcgm-exporter",
    version: "4.5.0",
    repository: "https://nvidia.github.io/dcgm-exporter/helm-charts",
  },
  clusterAutoscaler: {
    chart: "cluster-autoscaler",
    version: "9.50.1",
    repository: "https://kubernetes.github.io/autoscaler",
  },
  kubePrometheusStack: {
    chart: "kube-prometheus-stack",
    version: "77.1.1",
    repository: "https://prometheus-community.github.io/helm-charts",
  },
  awsForFluentBit: { chart: "aws-for-fluent-bit", version: "0.2.0", repository: "https://aws.github.io/eks-charts" },
  /** Chart 1.13.x ships controller v2.13.x; its IAM policy (policies.ts) must be the same release's. */
  awsLoadBalancerController: {
    chart: "aws-load-balancer-controller",
    version: "1.13.4",
    repository: "https://aws.github.io/eks-charts",
  },
  rabbitmqExporter: {
    chart: "prometheus-rabbitmq-exporter",
    version: "2.1.1",
    repository: "https://prometheus-community.github.io/helm-charts",
  },
} as const satisfies Record<string, ChartSource>;

export type ChartKey = keyof typeof CHARTS;

/**
 * cluster-autoscaler must run the minor version of the cluster it scales; its chart's default image follows the
 * chart, not the cluster. One pinned image per supported Kubernetes minor.
 */
export const CLUSTER_AUTOSCALER_IMAGES: Readonly<Record<string, string>> = {
  "1.32": "v1.32.5",
  "1.33": "v1.33.3",
  "1.34": "v1.34.2",
};

/** An exact semantic version (an optional leading `v`, as Jetstack tags cert-manager), no range or wildcard. */
export const EXACT_SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$/;
