import { MockMonitor } from "@pulumi/pulumi/runtime/mocks.js";
import { describe, expect, it } from "vitest";
import type { PlanResource } from "../../../stacks/plan/document.js";
import { planOf, planSerially, resourceOf, resourcesOf } from "../../../stacks/plan/testing.js";
import { ACME_SERVERS, NLB_ANNOTATIONS, needsDevicePlugin } from "./addons.js";
import { CHARTS, EXACT_SEMVER } from "./charts.js";
import { awsLoadBalancerControllerPolicy, type PolicyDocument, wildcardStatements } from "./policies.js";

const RELEASE = "kubernetes:helm.sh/v3:Release";
const ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer";
const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
const NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy";
const EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret";

/**
 * Each resource's direct dependencies (URNs), as the engine receives them: the plan document does not carry them, so
 * the mock monitor's registration is watched for this file's plans (one process per test file).
 */
const dependencies = new Map<string, string[]>();
const registerResource = MockMonitor.prototype.registerResource;
MockMonitor.prototype.registerResource = function (
  this: MockMonitor,
  request: { getName(): string; getDependenciesList(): string[] },
  callback: (error: unknown, response: unknown) => void,
) {
  dependencies.set(request.getName(), request.getDependenciesList());
  return registerResource.call(this, request, callback);
};
const dependsOn = (name: string, on: string): boolean =>
  (dependencies.get(name) ?? []).some((urn) => urn.endsWith(`::${on}`));

const addonReleases = (resources: PlanResource[]) =>
  resources.filter((resource) => resource.type === RELEASE && resource.parent === "ndt:k8s:Addons::addons");
const policyOf = (resource: PlanResource): PolicyDocument => JSON.parse(String(resource.inputs.policy));
type Values = Record<string, Record<string, unknown>>;

describe("Addons: Helm releases", () => {
  it.each(["prod", "dev"])("%s installs every add-on as a Release pinned to an exact chart version", async (stack) => {
    const releases = addonReleases((await planOf(stack)).resources);
    expect(releases.map((release) => release.inputs.chart).sort()).toEqual(
      [
        "aws-for-fluent-bit",
        "aws-load-balancer-controller",
        "cert-manager",
        "cluster-autoscaler",
        "dcgm-exporter",
        "external-dns",
        "external-secrets",
        "ingress-nginx",
        "keda",
        "kube-prometheus-stack",
        "metrics-server",
        "nvidia-device-plugin",
      ].sort(),
    );
    for (const release of releases) {
      expect(String(release.inputs.version), release.name).toMatch(EXACT_SEMVER);
      expect((release.inputs.repositoryOpts as { repo: string }).repo, release.name).toMatch(/^https:\/\//);
    }
  });

  it("the exact-version check refuses ranges, wildcards and missing patches", () => {
    for (const bad of ["^4.13.3", "4.13", "4.x", "~1.2.3", ">=1.0.0", "latest", ""])
      expect(bad).not.toMatch(EXACT_SEMVER);
    for (const good of ["4.13.3", "v1.18.2", "0.17.4"]) expect(good).toMatch(EXACT_SEMVER);
    for (const source of Object.values(CHARTS)) expect(source.version).toMatch(EXACT_SEMVER);
  });

  it("ingress-nginx serves class nginx behind an internet-facing NLB, snippets off", async () => {
    const values = resourceOf(await planOf("prod"), RELEASE, "addons-ingress-nginx").inputs.values as Values;
    const controller = values.controller as Record<string, unknown>;
    expect(controller.ingressClass).toBe("nginx");
    expect(controller.ingressClassResource).toMatchObject({ name: "nginx", enabled: true });
    expect(controller.allowSnippetAnnotations).toBe(false);
    expect(controller.service).toMatchObject({ type: "LoadBalancer", annotations: NLB_ANNOTATIONS });
    expect(controller.replicaCount).toBe(2);
  });

  it("kube-prometheus-stack is named for the ServiceMonitor label and routes by the observability AlertmanagerConfig", async () => {
    const kps = resourceOf(await planOf("prod"), RELEASE, "addons-kube-prometheus-stack");
    expect(kps.inputs.name).toBe("kube-prometheus-stack");
    const values = kps.inputs.values as Values;
    expect(values.alertmanager).toMatchObject({
      alertmanagerSpec: { alertmanagerConfiguration: { name: "ndt-alerting" } },
    });
    expect(values.prometheus).toMatchObject({ prometheusSpec: { retention: "30d" } });
    expect(values.grafana).toMatchObject({
      replicas: 1,
      admin: { existingSecret: "grafana-admin", userKey: "admin-user", passwordKey: "admin-password" },
      sidecar: { dashboards: { label: "grafana_dashboard" } },
    });
    expect(values.grafana).not.toHaveProperty("adminPassword");
    expect(values.grafana).not.toHaveProperty("podDisruptionBudget");
  });
});

describe("Addons: Grafana's admin password (K11, A15)", () => {
  it.each(["prod", "dev"])(
    "%s generates it into Secrets Manager under the data key, where External Secrets may read it",
    async (stack) => {
      const plan = await planOf(stack);
      const secret = resourceOf(plan, "aws:secretsmanager/secret:Secret", "addons-secrets-grafana-admin-password");
      expect(secret.inputs).toMatchObject({
        name: `ndt/${stack}/grafana/admin-password`,
        kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/keys-data",
      });
      const version = resourceOf(
        plan,
        "aws:secretsmanager/secretVersion:SecretVersion",
        "addons-secrets-grafana-admin-password",
      );
      expect(version.inputs.secretString).toBe("[secret]");
      const read = policyOf(resourceOf(plan, ROLE_POLICY, "addons-external-secrets-policy")).Statement[0];
      expect((read?.Resource as string[])[0]).toBe(
        `arn:aws:secretsmanager:eu-west-1:123456789012:secret:ndt/${stack}/*`,
      );
    },
  );

  it("an ExternalSecret syncs it into the Secret Grafana reads; Pulumi writes no Secret at all", async () => {
    const plan = await planOf("prod");
    const synced = resourceOf(plan, EXTERNAL_SECRET, "grafana-admin");
    expect(synced.inputs.metadata).toMatchObject({ name: "grafana-admin", namespace: "monitoring" });
    expect(synced.inputs.spec).toMatchObject({
      secretStoreRef: { kind: "ClusterSecretStore", name: "aws-secrets-manager" },
      target: {
        name: "grafana-admin",
        template: { data: { "admin-user": "admin", "admin-password": "{{ .password }}" } },
      },
      data: [{ secretKey: "password", remoteRef: { key: "ndt/prod/grafana/admin-password", property: "value" } }],
    });
    expect(resourcesOf(plan, "kubernetes:core/v1:Secret")).toEqual([]);
  });

  it.each(["prod", "dev"])(
    "%s: External Secrets and its store come first, then the ExternalSecret, then kube-prometheus-stack",
    async (stack) => {
      await planOf(stack);
      expect(dependsOn("grafana-admin", "addons-cluster-secret-store")).toBe(true);
      expect(dependsOn("grafana-admin", "addons-secrets-grafana-admin-password")).toBe(true);
      expect(dependsOn("addons-kube-prometheus-stack", "grafana-admin")).toBe(true);
      // no cycle: External Secrets no longer waits for kube-prometheus-stack's CRDs...
      expect(dependsOn("addons-external-secrets", "addons-kube-prometheus-stack")).toBe(false);
      // ...and is scraped through a PodMonitor made once they exist, not its chart's ServiceMonitor
      expect(dependsOn("addons-external-secrets-monitor", "addons-kube-prometheus-stack")).toBe(true);
    },
  );

  it("External Secrets' pods are scraped by a PodMonitor Prometheus selects, its chart's ServiceMonitor off", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, RELEASE, "addons-external-secrets").inputs.values).toMatchObject({
      serviceMonitor: { enabled: false },
    });
    const monitor = resourceOf(
      plan,
      "kubernetes:monitoring.coreos.com/v1:PodMonitor",
      "addons-external-secrets-monitor",
    );
    expect(monitor.inputs.metadata).toMatchObject({
      namespace: "external-secrets",
      labels: { release: "kube-prometheus-stack" },
    });
    expect(monitor.inputs.spec).toEqual({
      selector: { matchLabels: { "app.kubernetes.io/instance": "external-secrets" } },
      podMetricsEndpoints: [{ port: "metrics", interval: "30s" }],
    });
  });
});

describe("Addons: the public entry (AWS Load Balancer Controller, A13)", () => {
  it("ingress-nginx's Service is the load balancer controller's: an internet-facing NLB to pod IPs, TCP pass-through", async () => {
    const values = resourceOf(await planOf("prod"), RELEASE, "addons-ingress-nginx").inputs.values as Values;
    expect(values.controller?.service).toEqual({
      type: "LoadBalancer",
      loadBalancerClass: "service.k8s.aws/nlb",
      externalTrafficPolicy: "Local",
      ports: { http: 80, https: 443 },
      annotations: {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp",
        "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
        "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=true",
      },
    });
    // TLS stays with ingress-nginx: no certificate at the NLB, and no extra TCP/UDP ports on the Service.
    expect(Object.keys(NLB_ANNOTATIONS).some((key) => key.includes("ssl"))).toBe(false);
    expect(values.tcp).toBeUndefined();
    expect(values.udp).toBeUndefined();
  });

  it.each(["prod", "dev"])(
    "%s: the load balancer controller is installed before ingress-nginx, for this cluster and VPC",
    async (stack) => {
      const plan = await planOf(stack);
      const release = resourceOf(plan, RELEASE, "addons-aws-load-balancer-controller");
      expect(release.inputs).toMatchObject({
        chart: "aws-load-balancer-controller",
        version: CHARTS.awsLoadBalancerController.version,
        repositoryOpts: { repo: "https://aws.github.io/eks-charts" },
        namespace: "kube-system",
      });
      const replicas = stack === "prod" ? 2 : 1;
      expect(release.inputs.values).toMatchObject({
        clusterName: `ndt-${stack}`,
        region: "eu-west-1",
        vpcId: "vpc-network-vpc",
        replicaCount: replicas,
        podDisruptionBudget: replicas > 1 ? { maxUnavailable: 1 } : {},
        enableServiceMutatorWebhook: false,
        defaultTargetType: "ip",
        disableRestrictedSecurityGroupRules: false,
        createIngressClassResource: false,
        serviceMonitor: { enabled: true, additionalLabels: { release: "kube-prometheus-stack" } },
        resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { memory: "512Mi" } },
      });
      expect(dependsOn("addons-ingress-nginx", "addons-aws-load-balancer-controller")).toBe(true);
      expect(dependsOn("addons-aws-load-balancer-controller", "addons-ingress-nginx")).toBe(false);
    },
  );

  it("the controller's ServiceAccount assumes its IRSA role, which trusts that account only and carries its policy", async () => {
    const plan = await planOf("prod");
    const values = resourceOf(plan, RELEASE, "addons-aws-load-balancer-controller").inputs.values as Values;
    expect(values.serviceAccount).toEqual({
      create: true,
      name: "aws-load-balancer-controller",
      annotations: {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cluster-irsa-aws-load-balancer-controller",
      },
    });
    const role = resourceOf(plan, "aws:iam/role:Role", "cluster-irsa-aws-load-balancer-controller");
    const trust = JSON.parse(String(role.inputs.assumeRolePolicy));
    expect(trust.Statement).toHaveLength(1);
    expect(trust.Statement[0].Condition.StringEquals).toEqual({
      "oidc.eks.eu-west-1.amazonaws.com/id/CLUSTER-EKS:sub":
        "system:serviceaccount:kube-system:aws-load-balancer-controller",
      "oidc.eks.eu-west-1.amazonaws.com/id/CLUSTER-EKS:aud": "sts.amazonaws.com",
    });
    const policy = resourceOf(plan, ROLE_POLICY, "addons-aws-load-balancer-controller-policy");
    expect(policy.inputs.role).toBe("cluster-irsa-aws-load-balancer-controller");
    expect(policyOf(policy)).toEqual(awsLoadBalancerControllerPolicy());
  });

  it("the controller's policy is upstream's: named actions, load balancer writes gated by its cluster tag, fits inline", () => {
    const policy = awsLoadBalancerControllerPolicy();
    expect(wildcardStatements(policy)).toEqual([]);
    for (const statement of policy.Statement)
      for (const action of statement.Action) expect(action, statement.Sid).toMatch(/^[a-z0-9-]+:[A-Za-z]+$/);
    const gated = (action: string, tag: "RequestTag" | "ResourceTag") =>
      policy.Statement.filter((statement) => statement.Action.includes(action)).every(
        (statement) => statement.Condition?.Null?.[`aws:${tag}/elbv2.k8s.aws/cluster`] === "false",
      );
    expect(gated("elasticloadbalancing:CreateLoadBalancer", "RequestTag")).toBe(true);
    expect(gated("elasticloadbalancing:DeleteLoadBalancer", "ResourceTag")).toBe(true);
    expect(gated("ec2:DeleteSecurityGroup", "ResourceTag")).toBe(true);
    expect(new Set(policy.Statement.map((statement) => statement.Sid)).size).toBe(policy.Statement.length);
    // IAM limits a role's inline policies to 10,240 characters (whitespace not counted).
    expect(JSON.stringify(policy).length).toBeLessThan(10_240);
  });

  it("the ingress namespace asks for readiness gates; its policy admits 80/443 from anywhere and nothing else from outside", async () => {
    const plan = await planOf("prod");
    const namespace = resourceOf(plan, "kubernetes:core/v1:Namespace", "addons-ns-ingress-nginx");
    expect((namespace.inputs.metadata as Values).labels).toMatchObject({
      "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
    });
    const policy = resourceOf(plan, NETWORK_POLICY, "addons-ingress-nginx-netpol");
    expect(policy.inputs.metadata).toMatchObject({ name: "ingress-nginx-controller", namespace: "ingress-nginx" });
    expect(policy.inputs.spec).toEqual({
      podSelector: {
        matchLabels: { "app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller" },
      },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [{ ipBlock: { cidr: "0.0.0.0/0" } }],
          ports: [
            { protocol: "TCP", port: 80 },
            { protocol: "TCP", port: 443 },
          ],
        },
        {
          from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
          ports: [{ protocol: "TCP", port: 10254 }],
        },
        { from: [{ ipBlock: { cidr: "10.40.0.0/16" } }], ports: [{ protocol: "TCP", port: 8443 }] },
      ],
    });
  });
});

describe("Addons: cert-manager issuers", () => {
  it("both ACME ClusterIssuers solve DNS-01 in the stack's own zone through Route53", async () => {
    const plan = await planOf("prod");
    const issuers = resourcesOf(plan, ISSUER);
    expect(issuers.map((issuer) => (issuer.inputs.metadata as { name: string }).name).sort()).toEqual([
      "letsencrypt-production",
      "letsencrypt-staging",
    ]);
    for (const issuer of issuers) {
      const name = (issuer.inputs.metadata as { name: keyof typeof ACME_SERVERS }).name;
      expect(issuer.inputs.spec).toMatchObject({
        acme: {
          server: ACME_SERVERS[name],
          email: "platform@ndt.example.com",
          solvers: [
            {
              selector: { dnsZones: ["ndt.example.com"] },
              dns01: { route53: { region: "eu-west-1", hostedZoneID: "ZNDTEXAMPLECOM" } },
            },
          ],
        },
      });
    }
    expect(ACME_SERVERS["letsencrypt-staging"]).toContain("acme-staging-v02");
    expect(ACME_SERVERS["letsencrypt-production"]).not.toContain("staging");
  });

  it("dev uses the staging issuer, prod the production one (the stack output the ingress reads)", async () => {
    expect((await planOf("dev")).outputs.clusterIssuer).toBe("letsencrypt-staging");
    expect((await planOf("prod")).outputs.clusterIssuer).toBe("letsencrypt-production");
  });

  it("installs CRDs and gives the controller its IRSA role", async () => {
    const values = resourceOf(await planOf("prod"), RELEASE, "addons-cert-manager").inputs.values as Values;
    expect(values.crds).toEqual({ enabled: true, keep: true });
    expect(values.serviceAccount).toEqual({
      annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cluster-irsa-cert-manager" },
    });
  });
});

describe("Addons: IRSA scope (A14)", () => {
  it("cert-manager and external-dns change records in the platform's zone only", async () => {
    const plan = await planOf("prod");
    for (const name of ["addons-cert-manager-policy", "addons-external-dns-policy"]) {
      const policy = policyOf(resourceOf(plan, ROLE_POLICY, name));
      const writes = policy.Statement.filter((statement) =>
        statement.Action.includes("route53:ChangeResourceRecordSets"),
      );
      expect(writes.length, name).toBeGreaterThan(0);
      for (const statement of writes)
        expect(statement.Resource, name).toBe("arn:aws:route53:::hostedzone/ZNDTEXAMPLECOM");
    }
    const certManager = policyOf(resourceOf(plan, ROLE_POLICY, "addons-cert-manager-policy"));
    expect(JSON.stringify(certManager)).toContain('"route53:ChangeResourceRecordSetsRecordTypes":["TXT"]');
  });

  it("External Secrets reads the platform's secrets only: its prefix and the data tiers' own secrets", async () => {
    const policy = policyOf(resourceOf(await planOf("prod"), ROLE_POLICY, "addons-external-secrets-policy"));
    const read = policy.Statement.find((statement) => statement.Sid === "ReadPlatformSecrets");
    const resources = read?.Resource as string[];
    expect(resources[0]).toBe("arn:aws:secretsmanager:eu-west-1:123456789012:secret:ndt/prod/*");
    expect(resources.slice(1).every((arn) => arn.startsWith("arn:aws:secretsmanager:eu-west-1:123456789012:"))).toBe(
      true,
    );
    expect(resources).not.toContain("*");
    expect(read?.Action).toEqual(["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]);
  });

  it("no add-on policy pairs a wildcard action with a * resource; scaling writes need the cluster's tag", async () => {
    const plan = await planOf("prod");
    const policies = resourcesOf(plan, ROLE_POLICY).filter((resource) => resource.parent === "ndt:k8s:Addons::addons");
    expect(policies).toHaveLength(6);
    for (const resource of policies) expect(wildcardStatements(policyOf(resource)), resource.name).toEqual([]);
    const scale = policyOf(resourceOf(plan, ROLE_POLICY, "addons-cluster-autoscaler-policy")).Statement.find(
      (statement) => statement.Sid === "ScaleOwnNodeGroups",
    );
    expect(scale?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/k8s.io/cluster-autoscaler/ndt-prod": "owned" },
    });
  });

  it("the wildcard check catches a * action on * resources", () => {
    const bad: PolicyDocument = {
      Version: "2012-10-17",
      Statement: [{ Sid: "Bad", Effect: "Allow", Action: ["route53:*"], Resource: "*" }],
    };
    expect(wildcardStatements(bad)).toHaveLength(1);
  });

  it("each add-on role trusts only its own service account", async () => {
    const plan = await planOf("prod");
    const subjects = {
      "cert-manager": "system:serviceaccount:cert-manager:cert-manager",
      "external-dns": "system:serviceaccount:external-dns:external-dns",
      "external-secrets": "system:serviceaccount:external-secrets:external-secrets",
      "cluster-autoscaler": "system:serviceaccount:kube-system:cluster-autoscaler",
      "fluent-bit": "system:serviceaccount:amazon-cloudwatch:aws-for-fluent-bit",
      "aws-load-balancer-controller": "system:serviceaccount:kube-system:aws-load-balancer-controller",
    };
    for (const [role, subject] of Object.entries(subjects)) {
      const trust = JSON.parse(
        String(resourceOf(plan, "aws:iam/role:Role", `cluster-irsa-${role}`).inputs.assumeRolePolicy),
      );
      expect(Object.values(trust.Statement[0].Condition.StringEquals), role).toContain(subject);
    }
  });
});

describe("Addons: GPU and autoscaling", () => {
  it("the device plugin goes only where the AMI lacks it (AL2023 NVIDIA, not Bottlerocket)", async () => {
    expect(needsDevicePlugin("AL2023_x86_64_NVIDIA")).toBe(true);
    expect(needsDevicePlugin("BOTTLEROCKET_x86_64_NVIDIA")).toBe(false);
    const bottlerocket = await planSerially("prod", {
      editConfig: (config) => {
        const cluster = JSON.parse(config["ndt-platform:cluster"] ?? "{}");
        cluster.gpuNodes.amiType = "BOTTLEROCKET_x86_64_NVIDIA";
        config["ndt-platform:cluster"] = JSON.stringify(cluster);
      },
    });
    const charts = addonReleases(bottlerocket.resources).map((release) => release.inputs.chart);
    expect(charts).not.toContain("nvidia-device-plugin");
    expect(charts).toContain("dcgm-exporter");
    const plugin = resourceOf(await planOf("prod"), RELEASE, "addons-nvidia-device-plugin").inputs.values;
    expect(plugin).toMatchObject({
      nodeSelector: { "nvidia.com/gpu.present": "true" },
      tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
    });
  });

  it("cluster-autoscaler discovers this cluster's groups and runs the cluster's minor version", async () => {
    const values = resourceOf(await planOf("dev"), RELEASE, "addons-cluster-autoscaler").inputs.values;
    expect(values).toMatchObject({
      cloudProvider: "aws",
      autoDiscovery: { clusterName: "ndt-dev" },
      image: { tag: expect.stringMatching(/^v1\.33\.\d+$/) },
      replicaCount: 1,
      topologySpreadConstraints: [],
    });
  });

  it("prod runs cluster-autoscaler as a leader and a standby in different zones, evicted one at a time", async () => {
    const values = resourceOf(await planOf("prod"), RELEASE, "addons-cluster-autoscaler").inputs.values as Values;
    expect(values.replicaCount).toBe(2);
    expect(values.podDisruptionBudget).toEqual({ maxUnavailable: 1 });
    expect(values.extraArgs).not.toHaveProperty("leader-elect"); // the binary's default: on
    expect(values.topologySpreadConstraints).toEqual([
      {
        maxSkew: 1,
        topologyKey: "topology.kubernetes.io/zone",
        whenUnsatisfiable: "ScheduleAnyway",
        // the chart's pod labels: the release's name and `<cloudProvider>-cluster-autoscaler`
        labelSelector: {
          matchLabels: {
            "app.kubernetes.io/instance": "cluster-autoscaler",
            "app.kubernetes.io/name": "aws-cluster-autoscaler",
          },
        },
      },
    ]);
  });

  it("external-dns stays a singleton: no replica value (its chart fixes one), no budget", async () => {
    const values = resourceOf(await planOf("prod"), RELEASE, "addons-external-dns").inputs.values as Values;
    expect(values).not.toHaveProperty("replicaCount");
    expect(values).not.toHaveProperty("podDisruptionBudget");
  });

  it("fluent-bit ships to the Pulumi-owned, KMS-encrypted container log group", async () => {
    const plan = await planOf("prod");
    const group = resourceOf(plan, "aws:cloudwatch/logGroup:LogGroup", "addons-container-logs");
    expect(group.inputs).toMatchObject({ name: "/aws/eks/ndt-prod/containers", retentionInDays: 90 });
    expect(group.inputs.kmsKeyId).toBe("arn:aws:kms:eu-west-1:123456789012:key/keys-logs");
    const values = resourceOf(plan, RELEASE, "addons-aws-for-fluent-bit").inputs.values;
    expect(values).toMatchObject({
      cloudWatchLogs: { enabled: true, logGroupName: "/aws/eks/ndt-prod/containers", autoCreateGroup: false },
    });
  });
});

describe("Addons: External Secrets store", () => {
  it("one ClusterSecretStore on Secrets Manager, usable from the app and monitoring namespaces only", async () => {
    const store = resourceOf(
      await planOf("prod"),
      "kubernetes:external-secrets.io/v1:ClusterSecretStore",
      "addons-cluster-secret-store",
    );
    expect(store.inputs.metadata).toMatchObject({ name: "aws-secrets-manager" });
    expect(store.inputs.spec).toEqual({
      provider: { aws: { service: "SecretsManager", region: "eu-west-1" } },
      conditions: [{ namespaces: ["ndt", "monitoring"] }],
    });
  });
});

describe("Addons: availability (K7), a stack choice (addons.controllerReplicas)", () => {
  const valuesOf = async (stack: string, release: string): Promise<Values> =>
    resourceOf(await planOf(stack), RELEASE, `addons-${release}`).inputs.values as Values;
  const budget = { enabled: true, minAvailable: 1 };

  it("prod: External Secrets runs two leader-elected controllers and two webhooks, each with a budget", async () => {
    expect(await valuesOf("prod", "external-secrets")).toMatchObject({
      replicaCount: 2,
      leaderElect: true,
      podDisruptionBudget: budget,
      webhook: { replicaCount: 2, podDisruptionBudget: budget },
    });
  });

  it("prod: KEDA's operator, metrics apiserver and webhooks run two each, each with a budget", async () => {
    expect(await valuesOf("prod", "keda")).toMatchObject({
      operator: { replicaCount: 2 },
      metricsServer: { replicaCount: 2 },
      webhooks: { replicaCount: 2 },
      podDisruptionBudget: {
        operator: { minAvailable: 1 },
        metricServer: { minAvailable: 1 },
        webhooks: { minAvailable: 1 },
      },
    });
  });

  it("prod: cert-manager's controller, webhook and cainjector run two each, each with a budget", async () => {
    expect(await valuesOf("prod", "cert-manager")).toMatchObject({
      replicaCount: 2,
      podDisruptionBudget: budget,
      webhook: { replicaCount: 2, podDisruptionBudget: budget },
      cainjector: { replicaCount: 2, podDisruptionBudget: budget },
    });
  });

  it("prod: Prometheus and Alertmanager run two each, each with a budget", async () => {
    expect(await valuesOf("prod", "kube-prometheus-stack")).toMatchObject({
      prometheus: { prometheusSpec: { replicas: 2 }, podDisruptionBudget: budget },
      alertmanager: { alertmanagerSpec: { replicas: 2 }, podDisruptionBudget: budget },
    });
  });

  it("dev stays small: one of each and no budget (minAvailable 1 over one pod would block drains)", async () => {
    expect(await valuesOf("dev", "external-secrets")).toMatchObject({
      replicaCount: 1,
      leaderElect: true, // costs nothing, and a rollout's old and new pod never both sync
      podDisruptionBudget: { enabled: false },
      webhook: { replicaCount: 1, podDisruptionBudget: { enabled: false } },
    });
    expect(await valuesOf("dev", "keda")).toMatchObject({
      operator: { replicaCount: 1 },
      metricsServer: { replicaCount: 1 },
      webhooks: { replicaCount: 1 },
      podDisruptionBudget: { operator: {}, metricServer: {}, webhooks: {} },
    });
    expect(await valuesOf("dev", "cert-manager")).toMatchObject({
      replicaCount: 1,
      podDisruptionBudget: { enabled: false },
      webhook: { replicaCount: 1, podDisruptionBudget: { enabled: false } },
      cainjector: { replicaCount: 1, podDisruptionBudget: { enabled: false } },
    });
    expect(await valuesOf("dev", "kube-prometheus-stack")).toMatchObject({
      prometheus: { prometheusSpec: { replicas: 1 }, podDisruptionBudget: { enabled: false } },
      alertmanager: { alertmanagerSpec: { replicas: 1 }, podDisruptionBudget: { enabled: false } },
    });
  });

  it("the replica count follows the stack's config: a prod stack set to 3 runs three of each", async () => {
    const plan = await planSerially("prod", {
      editConfig: (config) => {
        const addons = JSON.parse(config["ndt-platform:addons"] ?? "{}");
        addons.controllerReplicas = 3;
        config["ndt-platform:addons"] = JSON.stringify(addons);
      },
    });
    const values = (release: string) => resourceOf(plan, RELEASE, `addons-${release}`).inputs.values as Values;
    expect(values("external-secrets")).toMatchObject({ replicaCount: 3, webhook: { replicaCount: 3 } });
    expect(values("keda")).toMatchObject({ operator: { replicaCount: 3 }, metricsServer: { replicaCount: 3 } });
    expect(values("cert-manager")).toMatchObject({ webhook: { replicaCount: 3 }, cainjector: { replicaCount: 3 } });
  });
});
