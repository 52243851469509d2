import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { APP_SECRET_PROPERTY, AppSecrets, appSecretPath } from "../../aws/app-secrets.js";
import { GPU_TAINT } from "../../aws/cluster.js";
import { applyTransform, type Transform } from "../../aws/transform.js";
import {
  APP_LABEL,
  CLUSTER_ISSUERS,
  CLUSTER_SECRET_STORE,
  INGRESS_CLASS,
  INGRESS_NAMESPACE,
  MONITORING_NAMESPACE,
  PART_OF,
  PART_OF_LABEL,
  SERVICE_MONITOR_LABELS,
} from "../names.js";
import { ALERTMANAGER_CONFIG_NAME, DASHBOARD_FOLDER_ANNOTATION, DASHBOARD_LABEL } from "../observability/names.js";
import { externalSecret } from "../workload.js";
import { CHARTS, type ChartKey, CLUSTER_AUTOSCALER_IMAGES } from "./charts.js";
import {
  awsLoadBalancerControllerPolicy,
  certManagerPolicy,
  clusterAutoscalerPolicy,
  externalDnsPolicy,
  externalSecretsPolicy,
  fluentBitPolicy,
  type PolicyDocument,
} from "./policies.js";
import type {
  AwsForFluentBitValues,
  AwsLoadBalancerControllerValues,
  CertManagerValues,
  ChartBudget,
  ClusterAutoscalerValues,
  DcgmExporterValues,
  ExternalDnsValues,
  ExternalSecretsValues,
  IngressNginxValues,
  KedaBudget,
  KedaValues,
  KubePrometheusStackValues,
  MetricsServerValues,
  NvidiaDevicePluginValues,
  Resources,
  Toleration,
  TopologySpreadConstraint,
} from "./values.js";

export type ClusterIssuerName = (typeof CLUSTER_ISSUERS)[keyof typeof CLUSTER_ISSUERS];

/** What the add-ons need of the cluster: its name and a way to mint IRSA roles (infra/aws/cluster.ts). */
export interface AddonsCluster {
  name: string;
  serviceAccountRole(roleName: string, namespace: string, serviceAccount: string): aws.iam.Role;
}

export interface AddonsArgs {
  cluster: AddonsCluster;
  /** The cluster's Kubernetes provider: every object and release goes through it. */
  provider: k8s.Provider;
  environment: "dev" | "prod";
  region: string;
  /** The cluster's VPC: the AWS Load Balancer Controller makes its load balancers and security groups there. */
  vpcId: pulumi.Input<string>;
  /**
   * The VPC's CIDR: the EKS control plane reaches admission webhooks from its network interfaces in the VPC, so
   * ingress-nginx's webhook port is open to this range only.
   * @example "10.40.0.0/16"
   */
  vpcCidr: string;
  /** Picks the cluster-autoscaler image of the same minor. */
  kubernetesVersion: string;
  /** The public Route53 zone: cert-manager and external-dns may touch this zone only. */
  zoneName: string;
  /** ACME account contact. */
  acmeEmail: string;
  /** The issuer the ingress uses; both issuers exist in every stack. */
  clusterIssuer: ClusterIssuerName;
  /**
   * Replicas of the controllers that carry traffic, admission webhooks, secrets sync, autoscaling or node scaling
   * (the leader-elected ones: one leads, the others stand by); with 2+, each of them also gets a PodDisruptionBudget
   * that lets a node drain evict one pod at a time. With 1, none gets a budget: `minAvailable: 1` over one pod would
   * block every drain.
   * @default 1
   */
  controllerReplicas?: number;
  prometheusRetentionDays: number;
  prometheusStorageGiB: number;
  containerLogRetentionDays: number;
  /**
   * The GPU node group's AMI: AL2023 NVIDIA AMIs ship the driver and container toolkit but not the Kubernetes
   * device plugin, Bottlerocket NVIDIA AMIs ship all three. The plugin is installed only for AL2023.
   */
  gpuAmiType: string;
  /** Whether the cluster has a GPU group at all (its max size > 0). */
  hasGpuNodes: boolean;
  /** Key of the platform's Secrets Manager entries (Keys `data`): External Secrets decrypts through it. */
  secretsKmsKeyArn: pulumi.Input<string>;
  /** Key of CloudWatch log groups (Keys `logs`). */
  logsKmsKeyArn: pulumi.Input<string>;
  /**
   * Secrets outside `ndt/<environment>/*` that External Secrets may read, e.g. the RDS-managed master secret.
   * @default []
   */
  extraSecretArns?: pulumi.Input<string>[];
  transform?: Partial<Record<ChartKey, Transform<k8s.helm.v3.ReleaseArgs>>>;
}

/**
 * The cluster add-ons, each a Helm release with a pinned chart version and typed values, in dependency order:
 * namespaces and a gp3 StorageClass; External Secrets with the `aws-secrets-manager` ClusterSecretStore first, so that
 * Grafana's admin password reaches kube-prometheus-stack as a synced Secret (K11); kube-prometheus-stack (its CRDs back
 * every later chart's ServiceMonitor, and External Secrets' PodMonitor); cert-manager with the Let's Encrypt staging and
 * production ClusterIssuers (DNS-01 on Route53); the AWS Load Balancer Controller; ingress-nginx behind an
 * internet-facing NLB that controller makes; external-dns; KEDA; metrics-server; cluster-autoscaler; the NVIDIA device
 * plugin (AL2023 GPU AMIs) and DCGM exporter; fluent-bit to CloudWatch Logs. Every AWS right comes from an IRSA role
 * scoped to what that add-on touches (A14).
 *
 * The public entry (A13, K10): the NLB sends TCP 80/443 straight to ingress-nginx's pod IPs (IP targets, client
 * addresses preserved), TLS stays with ingress-nginx and cert-manager's certificates. The controller gives the NLB its
 * own security group, open to the internet on the listener ports only, and admits that group's traffic into the
 * cluster's security group on the pod ports only: no NodePort is opened to anyone. EKS's in-tree service controller,
 * which opened every node's NodePorts to 0.0.0.0/0 for instance targets, no longer owns any Service. A NetworkPolicy
 * admits exactly that into the controller pods: 80/443 from anywhere, metrics from Prometheus, the admission webhook
 * from the VPC.
 *
 * Availability in prod (K7): the controllers run `controllerReplicas` (External Secrets leader-elected, its webhook
 * too; KEDA's operator, metrics apiserver and webhooks; cert-manager's controller, webhook and cainjector), Prometheus
 * and Alertmanager two each, every one of them with a PodDisruptionBudget that lets a drain evict one pod at a time;
 * two add-ons stay at one replica on purpose (external-dns, Grafana: see their functions, README "Add-on
 * availability", and K7's allow-list in infra/guardrails/k8s/releases.ts).
 *
 * Cost: the NLB ~$18/month plus traffic; Prometheus volume (gp3 $0.08/GiB: dev 20 GiB ~$2, prod 2×200 GiB ~$32);
 * CloudWatch Logs ingestion $0.50/GiB (dev ~$5, prod ~$50). The controllers fit on the system nodes.
 */
export class Addons extends pulumi.ComponentResource {
  /** The ClusterIssuer this stack's ingress uses. */
  readonly clusterIssuer: ClusterIssuerName;
  readonly ingressClass: string = INGRESS_CLASS;
  readonly clusterSecretStore: string = CLUSTER_SECRET_STORE;
  readonly releases: Partial<Record<ChartKey, k8s.helm.v3.Release>> = {};
  /** What must exist before workloads that use CRDs (ExternalSecret, ScaledObject, ServiceMonitor, Certificate). */
  readonly ready: pulumi.Resource[] = [];

  constructor(name: string, args: AddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:Addons", name, {}, opts);
    const replicas = args.controllerReplicas ?? 1;
    const prod = args.environment === "prod";
    // Prometheus and Alertmanager: two in prod (each keeps its own copy of the data; Alertmanager's peers dedupe).
    const monitoringReplicas = prod ? 2 : 1;
    const parent = this;
    const releases = this.releases;
    const k8sOpts = { parent, provider: args.provider };
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const zone = aws.route53.getZoneOutput({ name: args.zoneName, privateZone: false }, { parent: this });
    const zoneId = zone.zoneId;
    this.clusterIssuer = args.clusterIssuer;

    const namespaces = createNamespaces(this);
    const storageClass = createStorageClass();
    const secrets = createExternalSecrets();
    const monitoring = createMonitoring();
    const secretsMonitor = monitorExternalSecrets();
    const certManager = createCertManager();
    const loadBalancers = createLoadBalancerController();
    const ingress = createIngressNginx();
    const dns = createExternalDns();
    const keda = createKeda();
    const metrics = createMetricsServer();
    const autoscaler = createClusterAutoscaler();
    const gpu = createGpuSupport();
    const logs = createLogShipping();
    this.ready.push(
      ...secrets,
      monitoring,
      secretsMonitor,
      ...certManager,
      loadBalancers,
      ...ingress,
      dns,
      keda,
      metrics,
      autoscaler,
      ...gpu,
      logs,
    );
    this.registerOutputs({ clusterIssuer: this.clusterIssuer, ingressClass: this.ingressClass });

    function createNamespaces(parent: Addons): Record<string, k8s.core.v1.Namespace> {
      // Pod Security: charts' own pods are the charts' business, but nothing needs more than baseline except the
      // node agents (node-exporter, fluent-bit, DCGM) that read the host: those two namespaces are privileged.
      const levels: Record<string, "baseline" | "privileged"> = {
        [INGRESS_NAMESPACE]: "baseline",
        "cert-manager": "baseline",
        "external-dns": "baseline",
        "external-secrets": "baseline",
        keda: "baseline",
        [MONITORING_NAMESPACE]: "privileged",
        "amazon-cloudwatch": "privileged",
      };
      // IP targets: the load balancer controller adds a readiness gate to ingress-nginx's pods, so a rollout waits
      // until the NLB sees each new pod healthy before the next old one goes.
      const extraLabels: Record<string, Record<string, string>> = {
        [INGRESS_NAMESPACE]: { [POD_READINESS_GATE_LABEL]: "enabled" },
      };
      return Object.fromEntries(
        Object.entries(levels).map(([namespace, level]) => [
          namespace,
          new k8s.core.v1.Namespace(
            `${name}-ns-${namespace}`,
            {
              metadata: {
                name: namespace,
                labels: {
                  "pod-security.kubernetes.io/enforce": level,
                  "pod-security.kubernetes.io/warn": "restricted",
                  "pod-security.kubernetes.io/audit": "restricted",
                  [PART_OF_LABEL]: PART_OF,
                  ...extraLabels[namespace],
                },
              },
            },
            { parent, provider: args.provider },
          ),
        ]),
      );
    }

    function release<V extends object>(
      key: ChartKey,
      namespace: string,
      values: pulumi.Input<V>,
      dependsOn: pulumi.Resource[] = [],
      releaseName: string = CHARTS[key].chart,
    ): k8s.helm.v3.Release {
      const source = CHARTS[key];
      const nsResource = namespaces[namespace];
      const created = new k8s.helm.v3.Release(
        `${name}-${source.chart}`,
        applyTransform<k8s.helm.v3.ReleaseArgs>(
          {
            name: releaseName,
            chart: source.chart,
            version: source.version,
            repositoryOpts: { repo: source.repository },
            namespace,
            createNamespace: false,
            values: values as pulumi.Input<Record<string, unknown>>,
            atomic: true,
            cleanupOnFail: true,
            maxHistory: 5,
            timeout: 900,
          },
          args.transform?.[key],
        ),
        { ...k8sOpts, dependsOn: [...(nsResource ? [nsResource] : []), ...dependsOn] },
      );
      releases[key] = created;
      return created;
    }

    function irsa(
      addon: string,
      namespace: string,
      serviceAccount: string,
      policy: pulumi.Input<PolicyDocument>,
    ): aws.iam.Role {
      const role = args.cluster.serviceAccountRole(addon, namespace, serviceAccount);
      new aws.iam.RolePolicy(
        `${name}-${addon}-policy`,
        { role: role.name, policy: pulumi.output(policy).apply((doc) => JSON.stringify(doc)) },
        { parent },
      );
      return role;
    }

    function roleAnnotation(role: aws.iam.Role): { "eks.amazonaws.com/role-arn": pulumi.Input<string> } {
      return { "eks.amazonaws.com/role-arn": role.arn };
    }

    function createStorageClass(): k8s.storage.v1.StorageClass {
      // EKS 1.30+ marks no StorageClass default; Prometheus and Alertmanager volumes name this one.
      return new k8s.storage.v1.StorageClass(
        `${name}-gp3`,
        {
          metadata: { name: "gp3-encrypted" },
          provisioner: "ebs.csi.aws.com",
          parameters: { type: "gp3", encrypted: "true", "csi.storage.k8s.io/fstype": "ext4" },
          reclaimPolicy: prod ? "Retain" : "Delete",
          volumeBindingMode: "WaitForFirstConsumer",
          allowVolumeExpansion: true,
        },
        k8sOpts,
      );
    }

    /**
     * Grafana's admin password, the way the services' secrets go (K11, A15): generated into Secrets Manager under
     * `ndt/<environment>/grafana/admin-password` with the data key, synced by External Secrets into the Secret Grafana
     * reads. No Helm value and no Secret written by Pulumi carries it.
     */
    function createGrafanaAdminSecret(): k8s.apiextensions.CustomResource {
      const stored = new AppSecrets(
        `${name}-secrets`,
        { environment: args.environment, secrets: [GRAFANA_ADMIN.secret], kmsKeyArn: args.secretsKmsKeyArn },
        { parent },
      );
      return externalSecret(
        GRAFANA_ADMIN.name,
        MONITORING_NAMESPACE,
        { [PART_OF_LABEL]: PART_OF },
        [
          {
            secretKey: "password",
            remoteRef: { key: appSecretPath(args.environment, GRAFANA_ADMIN.secret), property: APP_SECRET_PROPERTY },
          },
        ],
        { ...k8sOpts, dependsOn: [namespaces[MONITORING_NAMESPACE] as k8s.core.v1.Namespace, ...secrets, stored] },
        { [GRAFANA_ADMIN.userKey]: "admin", [GRAFANA_ADMIN.passwordKey]: "{{ .password }}" },
      );
    }

    function createMonitoring(): k8s.helm.v3.Release {
      const adminSecret = createGrafanaAdminSecret();
      const values: KubePrometheusStackValues = {
        prometheus: {
          prometheusSpec: {
            replicas: monitoringReplicas,
            retention: `${args.prometheusRetentionDays}d`,
            serviceMonitorSelectorNilUsesHelmValues: true,
            ruleSelectorNilUsesHelmValues: true,
            storageSpec: {
              volumeClaimTemplate: {
                spec: {
                  storageClassName: "gp3-encrypted",
                  accessModes: ["ReadWriteOnce"],
                  resources: { requests: { storage: `${args.prometheusStorageGiB}Gi` } },
                },
              },
            },
            resources: prod
              ? { requests: { cpu: "1", memory: "4Gi" }, limits: { memory: "8Gi" } }
              : { requests: { cpu: "250m", memory: "1Gi" }, limits: { memory: "2Gi" } },
          },
          podDisruptionBudget: chartBudget(monitoringReplicas),
        },
        alertmanager: {
          alertmanagerSpec: {
            replicas: monitoringReplicas,
            alertmanagerConfiguration: { name: ALERTMANAGER_CONFIG_NAME },
            resources: small("50m", "64Mi", "128Mi"),
          },
          podDisruptionBudget: chartBudget(monitoringReplicas),
        },
        grafana: {
          // One replica in every stack, and no PodDisruptionBudget (K7's documented exception): Grafana keeps users,
          // sessions and alert state in a SQLite database of its own pod, so a second replica would log users out
          // and evaluate alerts twice; more than one needs a shared database. While it is rescheduled, dashboards are
          // away; alerting never goes through Grafana (Prometheus and Alertmanager run two replicas each).
          replicas: 1,
          admin: {
            existingSecret: GRAFANA_ADMIN.name,
            userKey: GRAFANA_ADMIN.userKey,
            passwordKey: GRAFANA_ADMIN.passwordKey,
          },
          sidecar: {
            dashboards: {
              enabled: true,
              label: DASHBOARD_LABEL.key,
              labelValue: DASHBOARD_LABEL.value,
              searchNamespace: MONITORING_NAMESPACE,
              folderAnnotation: DASHBOARD_FOLDER_ANNOTATION,
              provider: { foldersFromFilesStructure: true },
            },
          },
          resources: small("100m", "256Mi", "512Mi"),
        },
      };
      // The release name is the label Prometheus selects ServiceMonitors and rules by (SERVICE_MONITOR_LABELS).
      const created = release(
        "kubePrometheusStack",
        MONITORING_NAMESPACE,
        values,
        [storageClass, adminSecret],
        SERVICE_MONITOR_LABELS.release,
      );
      return created;
    }

    function createExternalSecrets(): pulumi.Resource[] {
      const namespace = "external-secrets";
      const serviceAccount = "external-secrets";
      const policy = pulumi
        .all([account, pulumi.output(args.secretsKmsKeyArn), pulumi.all(args.extraSecretArns ?? [])])
        .apply(([accountId, kmsKeyArn, secretArns]) =>
          externalSecretsPolicy({
            region: args.region,
            accountId,
            environment: args.environment,
            secretArns,
            kmsKeyArn,
          }),
        );
      const role = irsa("external-secrets", namespace, serviceAccount, policy);
      const values: ExternalSecretsValues = {
        installCRDs: true,
        replicaCount: replicas,
        // One controller syncs, the others stand by for the lease. On at one replica too: a rolling update runs the
        // old and the new pod side by side, and both would sync every ExternalSecret.
        leaderElect: true,
        podDisruptionBudget: chartBudget(replicas),
        serviceAccount: { name: serviceAccount, annotations: roleAnnotation(role) },
        // Off: installed before kube-prometheus-stack, the chart would find no ServiceMonitor CRD and silently
        // render none on a new cluster. Its pods are scraped through monitorExternalSecrets' PodMonitor instead.
        serviceMonitor: { enabled: false },
        // Stateless; its failure policy is Fail, so with it away no ExternalSecret or store can be written.
        webhook: { replicaCount: replicas, podDisruptionBudget: chartBudget(replicas) },
        resources: small("50m", "128Mi", "256Mi"),
      };
      const operator = release("externalSecrets", namespace, values);
      // The controller's own IRSA credentials: no auth block, no static keys. Only the application and
      // monitoring namespaces may use the store.
      const store = new k8s.apiextensions.CustomResource(
        `${name}-cluster-secret-store`,
        {
          apiVersion: "external-secrets.io/v1",
          kind: "ClusterSecretStore",
          metadata: { name: CLUSTER_SECRET_STORE },
          spec: {
            provider: { aws: { service: "SecretsManager", region: args.region } },
            conditions: [{ namespaces: ["ndt", MONITORING_NAMESPACE] }],
          },
        },
        { ...k8sOpts, dependsOn: [operator] },
      );
      return [operator, store];
    }

    /** External Secrets' controller, webhook and cert-controller pods, each serving `metrics`, for Prometheus. */
    function monitorExternalSecrets(): k8s.apiextensions.CustomResource {
      return new k8s.apiextensions.CustomResource(
        `${name}-external-secrets-monitor`,
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind: "PodMonitor",
          metadata: { name: "external-secrets", namespace: "external-secrets", labels: { ...SERVICE_MONITOR_LABELS } },
          spec: {
            selector: { matchLabels: { "app.kubernetes.io/instance": CHARTS.externalSecrets.chart } },
            podMetricsEndpoints: [{ port: "metrics", interval: "30s" }],
          },
        },
        { ...k8sOpts, dependsOn: [monitoring, ...secrets] },
      );
    }

    function createCertManager(): pulumi.Resource[] {
      const namespace = "cert-manager";
      const role = irsa("cert-manager", namespace, "cert-manager", zoneId.apply(certManagerPolicy));
      const values: CertManagerValues = {
        crds: { enabled: true, keep: true },
        replicaCount: replicas,
        podDisruptionBudget: chartBudget(replicas),
        serviceAccount: { annotations: roleAnnotation(role) },
        securityContext: { fsGroup: 1001, runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
        prometheus: { enabled: true, servicemonitor: { enabled: true, labels: { ...SERVICE_MONITOR_LABELS } } },
        // The controller and cainjector elect a leader (the chart's default); the webhook is stateless.
        webhook: { replicaCount: replicas, podDisruptionBudget: chartBudget(replicas) },
        cainjector: { replicaCount: replicas, podDisruptionBudget: chartBudget(replicas) },
        resources: small("50m", "128Mi", "256Mi"),
      };
      const operator = release("certManager", namespace, values, [monitoring]);
      const issuers = (Object.values(CLUSTER_ISSUERS) as ClusterIssuerName[]).map(
        (issuer) =>
          new k8s.apiextensions.CustomResource(
            `${name}-${issuer}`,
            {
              apiVersion: "cert-manager.io/v1",
              kind: "ClusterIssuer",
              metadata: { name: issuer },
              spec: {
                acme: {
                  server: ACME_SERVERS[issuer],
                  email: args.acmeEmail,
                  privateKeySecretRef: { name: `${issuer}-account-key` },
                  solvers: [
                    {
                      selector: { dnsZones: [args.zoneName] },
                      // Ambient IRSA credentials of the controller; the zone named, so no zone listing is needed.
                      dns01: { route53: { region: args.region, hostedZoneID: zoneId } },
                    },
                  ],
                },
              },
            },
            { ...k8sOpts, dependsOn: [operator] },
          ),
      );
      return [operator, ...issuers];
    }

    function createLoadBalancerController(): k8s.helm.v3.Release {
      // kube-system, as upstream installs it; no toleration: it runs on the system nodes, never the tainted GPU ones.
      // No zone spread list: the chart's default soft anti-affinity spreads the replicas over nodes, and its values
      // schema types topologySpreadConstraints as an object.
      const namespace = "kube-system";
      const serviceAccount = "aws-load-balancer-controller";
      const role = irsa("aws-load-balancer-controller", namespace, serviceAccount, awsLoadBalancerControllerPolicy());
      const values: AwsLoadBalancerControllerValues = {
        clusterName: args.cluster.name,
        region: args.region,
        vpcId: args.vpcId,
        replicaCount: replicas,
        podDisruptionBudget: replicas > 1 ? { maxUnavailable: 1 } : {},
        serviceAccount: { create: true, name: serviceAccount, annotations: roleAnnotation(role) },
        // Off: with it on, the controller's webhook (failure policy Fail) sits in front of every Service created in
        // the cluster and claims every LoadBalancer Service with its defaults. Here only a Service that asks for this
        // controller gets an NLB (ingress-nginx's, by class and annotations), and an outage of the controller cannot
        // block Service creation elsewhere. A13's check fails any LoadBalancer Service that does not ask for it.
        enableServiceMutatorWebhook: false,
        defaultTargetType: "ip",
        enableBackendSecurityGroup: true,
        disableRestrictedSecurityGroupRules: false,
        createIngressClassResource: false,
        disableIngressClassAnnotation: true,
        enableShield: false,
        enableWaf: false,
        enableWafv2: false,
        keepTLSSecret: true,
        serviceMonitor: { enabled: true, additionalLabels: { ...SERVICE_MONITOR_LABELS } },
        resources: small("50m", "128Mi", "512Mi"),
      };
      return release("awsLoadBalancerController", namespace, values, [monitoring]);
    }

    /** prod: a chart's replicas spread over zones where the scheduler can (K7); dev runs one of each. */
    function zoneSpread(matchLabels: Record<string, string>): TopologySpreadConstraint[] {
      if (!prod) return [];
      return [
        {
          maxSkew: 1,
          topologyKey: "topology.kubernetes.io/zone",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels },
        },
      ];
    }

    function createIngressNginx(): pulumi.Resource[] {
      const values: IngressNginxValues = {
        controller: {
          ingressClass: INGRESS_CLASS,
          ingressClassResource: {
            name: INGRESS_CLASS,
            enabled: true,
            default: false,
            controllerValue: "k8s.io/ingress-nginx",
          },
          replicaCount: replicas,
          minAvailable: 1,
          // Snippets let an Ingress author inject nginx config (CVE-2021-25742, CVE-2025-1974 family): off.
          allowSnippetAnnotations: false,
          config: {
            "server-tokens": "false",
            "ssl-protocols": "TLSv1.2 TLSv1.3",
            hsts: "true",
            "use-forwarded-headers": "false",
            "enable-underscores-in-headers": "false",
          },
          service: {
            type: "LoadBalancer",
            loadBalancerClass: LOAD_BALANCER_CLASS,
            // No effect on the NLB's path (IP targets reach pod IPs directly); on the NodePorts Kubernetes still
            // allocates, only nodes running a controller pod answer.
            externalTrafficPolicy: "Local",
            annotations: NLB_ANNOTATIONS,
            ports: { http: 80, https: 443 },
          },
          metrics: {
            enabled: true,
            serviceMonitor: { enabled: true, additionalLabels: { ...SERVICE_MONITOR_LABELS } },
          },
          resources: prod ? small("200m", "256Mi", "512Mi") : small("100m", "128Mi", "256Mi"),
          topologySpreadConstraints: zoneSpread({ [APP_LABEL]: INGRESS_NGINX_APP }),
        },
      };
      // The load balancer controller first: it makes the NLB, and its webhook injects the readiness gate into the
      // controller pods (failure policy Fail in this namespace, so it must be serving before they are created).
      const controller = release("ingressNginx", INGRESS_NAMESPACE, values, [monitoring, loadBalancers]);
      return [controller, createIngressNetworkPolicy()];
    }

    function createIngressNetworkPolicy(): k8s.networking.v1.NetworkPolicy {
      const tcp = (port: number) => ({ protocol: "TCP", port });
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-ingress-nginx-netpol`,
        {
          metadata: {
            name: "ingress-nginx-controller",
            namespace: INGRESS_NAMESPACE,
            labels: { [PART_OF_LABEL]: PART_OF },
          },
          spec: {
            podSelector: {
              matchLabels: { [APP_LABEL]: INGRESS_NGINX_APP, "app.kubernetes.io/component": "controller" },
            },
            // Ingress only: what may reach the public entry. Its egress (the API server, the gateway) stays open.
            policyTypes: ["Ingress"],
            ingress: [
              // Clients, whose addresses the NLB preserves, and the NLB's health checks: the listener ports only.
              { from: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [tcp(80), tcp(443)] },
              // Prometheus scrapes the controller's metrics.
              {
                from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": MONITORING_NAMESPACE } } }],
                ports: [tcp(INGRESS_NGINX_PORTS.metrics)],
              },
              // The API server calls the admission webhook from the control plane's interfaces in the VPC.
              { from: [{ ipBlock: { cidr: args.vpcCidr } }], ports: [tcp(INGRESS_NGINX_PORTS.webhook)] },
            ],
          },
        },
        { ...k8sOpts, dependsOn: [namespaces[INGRESS_NAMESPACE] as k8s.core.v1.Namespace] },
      );
    }

    /**
     * One replica in every stack, and no PodDisruptionBudget (K7's documented exception): external-dns has no leader
     * election, so two replicas would both write the zone's records and TXT ownership entries, racing each other; its
     * chart fixes the Deployment at one replica (no replica value) with the Recreate strategy, so an upgrade never
     * runs two either. An outage only delays record changes for new or changed Ingresses: the records that exist
     * keep resolving (prod's policy is upsert-only).
     */
    function createExternalDns(): k8s.helm.v3.Release {
      const namespace = "external-dns";
      const role = irsa("external-dns", namespace, "external-dns", zoneId.apply(externalDnsPolicy));
      const values = zoneId.apply((id): ExternalDnsValues => ({
        provider: { name: "aws" },
        env: [{ name: "AWS_DEFAULT_REGION", value: args.region }],
        domainFilters: [args.zoneName],
        policy: prod ? "upsert-only" : "sync",
        registry: "txt",
        txtOwnerId: args.cluster.name,
        sources: ["ingress"],
        extraArgs: [`--zone-id-filter=${id}`, "--aws-zone-type=public"],
        serviceAccount: { name: "external-dns", annotations: roleAnnotation(role) },
        serviceMonitor: { enabled: true, additionalLabels: { ...SERVICE_MONITOR_LABELS } },
        resources: small("25m", "64Mi", "128Mi"),
      }));
      return release("externalDns", namespace, values, [monitoring]);
    }

    function createKeda(): k8s.helm.v3.Release {
      const monitor = { enabled: true, additionalLabels: { ...SERVICE_MONITOR_LABELS } };
      // The operator elects a leader, the other stands by; a second metrics apiserver keeps the external metrics API
      // (the detector's HPA reads the queue depth through it) answering while one is away.
      const budget: KedaBudget = replicas > 1 ? { minAvailable: 1 } : {};
      const values: KedaValues = {
        operator: { replicaCount: replicas },
        metricsServer: { replicaCount: replicas },
        webhooks: { replicaCount: replicas },
        podDisruptionBudget: { operator: budget, metricServer: budget, webhooks: budget },
        // The operator's metrics include the queue length each scaler reads (keda_scaler_metrics_value).
        prometheus: {
          operator: { enabled: true, serviceMonitor: monitor },
          metricServer: { enabled: true, serviceMonitor: monitor },
        },
        resources: {
          operator: small("100m", "128Mi", "512Mi"),
          metricServer: small("100m", "128Mi", "512Mi"),
        },
      };
      return release("keda", "keda", values, [monitoring]);
    }

    function createMetricsServer(): k8s.helm.v3.Release {
      const values: MetricsServerValues = {
        replicas,
        podDisruptionBudget: replicas > 1 ? { enabled: true, minAvailable: 1 } : { enabled: false },
        resources: small("50m", "64Mi", "256Mi"),
      };
      return release("metricsServer", "kube-system", values);
    }

    function createClusterAutoscaler(): k8s.helm.v3.Release {
      const minor = args.kubernetesVersion;
      const image = CLUSTER_AUTOSCALER_IMAGES[minor];
      if (!image) {
        throw new Error(
          `addons: no cluster-autoscaler image pinned for Kubernetes ${minor} (known: ${Object.keys(CLUSTER_AUTOSCALER_IMAGES).join(", ")}); add it to infra/k8s/addons/charts.ts`,
        );
      }
      const serviceAccount = "cluster-autoscaler";
      const policy = account.apply((accountId) =>
        clusterAutoscalerPolicy({ region: args.region, accountId, clusterName: args.cluster.name }),
      );
      const role = irsa("cluster-autoscaler", "kube-system", serviceAccount, policy);
      const values: ClusterAutoscalerValues = {
        cloudProvider: "aws",
        awsRegion: args.region,
        autoDiscovery: { clusterName: args.cluster.name },
        image: { tag: image },
        // Leader-elected (the binary's --leader-elect defaults to true): one replica scales, the other stands by and
        // takes the lease within its 15 s when the leader's node is drained or lost, instead of the cluster waiting
        // for a new pod, which may itself have nowhere to run until a node is added. Either may be evicted, one at a
        // time (the chart's own default budget, stated here).
        replicaCount: replicas,
        podDisruptionBudget: { maxUnavailable: 1 },
        topologySpreadConstraints: zoneSpread({
          "app.kubernetes.io/instance": CHARTS.clusterAutoscaler.chart,
          "app.kubernetes.io/name": `aws-${CHARTS.clusterAutoscaler.chart}`,
        }),
        rbac: { serviceAccount: { create: true, name: serviceAccount, annotations: roleAnnotation(role) } },
        extraArgs: {
          // GPU nodes are the expensive ones: pick the group that wastes least, and let idle ones go soon in dev.
          expander: "least-waste",
          "balance-similar-node-groups": true,
          "skip-nodes-with-system-pods": false,
          "scale-down-unneeded-time": prod ? "10m" : "5m",
        },
        serviceMonitor: {
          enabled: true,
          namespace: "kube-system",
          selector: { ...SERVICE_MONITOR_LABELS },
          interval: "30s",
        },
        resources: small("50m", "128Mi", "512Mi"),
      };
      return release("clusterAutoscaler", "kube-system", values, [monitoring]);
    }

    function createGpuSupport(): k8s.helm.v3.Release[] {
      if (!args.hasGpuNodes) return [];
      const onGpuNodes = { "nvidia.com/gpu.present": "true" };
      const gpuToleration: Toleration = { key: GPU_TAINT.key, operator: "Exists", effect: "NoSchedule" };
      const created: k8s.helm.v3.Release[] = [];
      if (needsDevicePlugin(args.gpuAmiType)) {
        const values: NvidiaDevicePluginValues = {
          nodeSelector: onGpuNodes,
          tolerations: [gpuToleration],
          priorityClassName: "system-node-critical",
          gfd: { enabled: false },
          failOnInitError: true,
        };
        created.push(release("nvidiaDevicePlugin", "kube-system", values));
      }
      // GPU utilisation for the "GPU idle while the queue grows" alert and the detector dashboard.
      const dcgm: DcgmExporterValues = {
        nodeSelector: onGpuNodes,
        tolerations: [gpuToleration],
        serviceMonitor: { enabled: true, additionalLabels: { ...SERVICE_MONITOR_LABELS }, interval: "15s" },
        resources: small("100m", "128Mi", "512Mi"),
      };
      created.push(release("dcgmExporter", MONITORING_NAMESPACE, dcgm, [monitoring]));
      return created;
    }

    function createLogShipping(): k8s.helm.v3.Release {
      const namespace = "amazon-cloudwatch";
      const serviceAccount = "aws-for-fluent-bit";
      const logGroup = new aws.cloudwatch.LogGroup(
        `${name}-container-logs`,
        {
          name: `/aws/eks/${args.cluster.name}/containers`,
          retentionInDays: args.containerLogRetentionDays,
          kmsKeyId: args.logsKmsKeyArn,
        },
        { parent },
      );
      const role = irsa("fluent-bit", namespace, serviceAccount, logGroup.arn.apply(fluentBitPolicy));
      const values: AwsForFluentBitValues = {
        cloudWatchLogs: {
          enabled: true,
          region: args.region,
          logGroupName: logGroup.name,
          logStreamPrefix: "pod-",
          autoCreateGroup: false,
        },
        cloudWatch: { enabled: false },
        firehose: { enabled: false },
        kinesis: { enabled: false },
        elasticsearch: { enabled: false },
        serviceAccount: { create: true, name: serviceAccount, annotations: roleAnnotation(role) },
        tolerations: [{ operator: "Exists" }],
        resources: small("50m", "64Mi", "256Mi"),
      };
      return release("awsForFluentBit", namespace, values);
    }
  }
}

/**
 * Grafana's admin credentials: the Secrets Manager entry (under `ndt/<environment>/`, which External Secrets may
 * read), and the synced Secret with the keys kube-prometheus-stack's Grafana reads them from.
 */
const GRAFANA_ADMIN = {
  secret: "grafana/admin-password",
  name: "grafana-admin",
  userKey: "admin-user",
  passwordKey: "admin-password",
} as const;

/** Let's Encrypt's ACME directories, per issuer. */
export const ACME_SERVERS: Record<ClusterIssuerName, string> = {
  "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
  "letsencrypt-production": "https://acme-v02.api.letsencrypt.org/directory",
};

/** The AWS Load Balancer Controller's Service class (its default `loadBalancerClass`). */
const LOAD_BALANCER_CLASS = "service.k8s.aws/nlb";

/** The namespace label that makes the load balancer controller add target-health readiness gates to pods. */
const POD_READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject";

/** ingress-nginx controller ports beyond the listeners (the chart's defaults). */
/** ingress-nginx's pods' app label value (the chart's). */
const INGRESS_NGINX_APP = "ingress-nginx";

const INGRESS_NGINX_PORTS = { metrics: 10254, webhook: 8443 } as const;

/**
 * An internet-facing Network Load Balancer from the AWS Load Balancer Controller (`external`), targets the controller
 * pods' IPs (`ip`: no NodePort in the path, none opened in any security group), the clients' addresses preserved
 * (IP targets hide them by default) for rate limits and logs, cross-zone on. TCP pass-through: ingress-nginx
 * terminates TLS with cert-manager's certificates (no TLS at the NLB). The controller gives the NLB a security group
 * open on the listener ports only and admits it into the cluster's group on the target ports only.
 */
export const NLB_ANNOTATIONS: Record<string, string> = {
  "service.beta.kubernetes.io/aws-load-balancer-type": "external",
  "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
  "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
  "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp",
  "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
  "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=true",
};

/** AL2023 NVIDIA AMIs lack the Kubernetes device plugin; Bottlerocket NVIDIA variants include it. */
export function needsDevicePlugin(amiType: string): boolean {
  return amiType.startsWith("AL2023") && amiType.includes("NVIDIA");
}

/**
 * A chart's own PodDisruptionBudget for a workload of `replicas` pods: one may be evicted at a time; none for a single
 * pod, where `minAvailable: 1` would block every node drain (K7).
 */
function chartBudget(replicas: number): ChartBudget {
  return replicas > 1 ? { enabled: true, minAvailable: 1 } : { enabled: false };
}

function small(cpu: string, memory: string, memoryLimit: string): Resources {
  return { requests: { cpu, memory }, limits: { memory: memoryLimit } };
}
