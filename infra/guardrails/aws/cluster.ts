import { SUPPORTED_KUBERNETES_VERSIONS } from "../../../stacks/config.js";
import type { PlanResource } from "../../../stacks/plan/document.js";
import { asArray, at, findingsFor, type Guardrail, inputAt, ofType, stackKey } from "../guardrail.js";

const EKS = "eks:index:Cluster";
const NODE_GROUP = "eks:index:ManagedNodeGroup";
const LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate";
const LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"];

export const a1EndpointAccess: Guardrail = {
  id: "A1",
  title: "EKS API endpoint private, or public only to listed CIDRs (prod: private)",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A1");
    for (const cluster of ofType(plan, EKS)) {
      if (inputAt(cluster, "endpointPrivateAccess") !== true) fail(cluster, "private endpoint access is off");
      if (inputAt(cluster, "endpointPublicAccess") === false) continue;
      if (environment === "prod") fail(cluster, "prod API endpoint is public");
      const cidrs = asArray(inputAt(cluster, "publicAccessCidrs"));
      if (cidrs.length === 0) fail(cluster, "public endpoint open to every address (no publicAccessCidrs)");
      if (cidrs.includes("0.0.0.0/0")) fail(cluster, "public endpoint open to 0.0.0.0/0");
    }
    return findings;
  },
};

export const a2SecretsAndLogs: Guardrail = {
  id: "A2",
  title: "EKS secrets encrypted with a customer-managed KMS key; all five control-plane log types on",
  check({ plan }) {
    const { findings, fail } = findingsFor("A2");
    for (const cluster of ofType(plan, EKS)) {
      const key = inputAt(cluster, "encryptionConfigKeyArn");
      if (typeof key !== "string" || !key.includes(":kms:")) fail(cluster, "secrets are not encrypted with a KMS key");
      const logs = asArray(inputAt(cluster, "enabledClusterLogTypes"));
      const missing = LOG_TYPES.filter((type) => !logs.includes(type));
      if (missing.length > 0) fail(cluster, `control-plane log types off: ${missing.join(", ")}`);
    }
    return findings;
  },
};

export const a3AuthenticationAndVersion: Guardrail = {
  id: "A3",
  title: "EKS authentication mode API, OIDC provider for IRSA, a pinned supported Kubernetes version",
  check({ plan }) {
    const { findings, fail } = findingsFor("A3");
    const clusters = ofType(plan, EKS);
    if (clusters.length === 0) fail(stackKey(plan), "no EKS cluster in the plan");
    for (const cluster of clusters) {
      if (inputAt(cluster, "authenticationMode") !== "API")
        fail(cluster, "authentication mode is not API (access entries)");
      if (inputAt(cluster, "createOidcProvider") !== true) fail(cluster, "no OIDC provider: pods cannot use IRSA");
      const version = inputAt(cluster, "version");
      if (typeof version !== "string") fail(cluster, "Kubernetes version is not pinned");
      else if (!(SUPPORTED_KUBERNETES_VERSIONS as readonly string[]).includes(version))
        fail(cluster, `Kubernetes ${version} is not a supported version`);
    }
    return findings;
  },
};

export const a4NodeHardening: Guardrail = {
  id: "A4",
  title: "Node groups: IMDSv2 required, hop limit 1, no public IPs, encrypted volumes",
  check({ plan }) {
    const { findings, fail } = findingsFor("A4");
    const templates = new Map(ofType(plan, LAUNCH_TEMPLATE).map((template) => [template.name, template]));
    for (const cluster of ofType(plan, EKS)) {
      if (inputAt(cluster, "nodeAssociatePublicIpAddress") !== false) fail(cluster, "nodes may get public IPs");
    }
    const privateSubnets = new Set(
      ofType(plan, EKS).flatMap((cluster) => asArray(inputAt(cluster, "privateSubnetIds"))),
    );
    for (const group of ofType(plan, NODE_GROUP)) {
      const subnets = asArray(inputAt(group, "subnetIds"));
      if (subnets.length === 0 || subnets.some((subnet) => !privateSubnets.has(subnet))) {
        fail(group, "node group runs outside the cluster's private subnets");
      }
      const template = launchTemplateOf(group, templates);
      if (!template) {
        fail(group, "no launch template: IMDS and volume settings are left to defaults");
        continue;
      }
      if (inputAt(template, "metadataOptions.httpTokens") !== "required") fail(template, "IMDSv2 is not required");
      if (inputAt(template, "metadataOptions.httpPutResponseHopLimit") !== 1) fail(template, "IMDS hop limit is not 1");
      const volumes = asArray(inputAt(template, "blockDeviceMappings"));
      if (volumes.length === 0) fail(template, "no block device mapping: the root volume's encryption is not set");
      for (const [index, volume] of volumes.entries()) {
        const encrypted = at(volume, "ebs.encrypted");
        if (encrypted !== "true" && encrypted !== true) fail(template, `volume ${index} is not encrypted`);
      }
    }
    return findings;
  },
};

export const a5GpuNodeGroup: Guardrail = {
  id: "A5",
  title: "GPU node group: NVIDIA AMI, nvidia.com/gpu=true:NoSchedule taint, worker label; dev scales from 0",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A5");
    const gpuGroups = ofType(plan, NODE_GROUP).filter((group) =>
      String(inputAt(group, "amiType") ?? "").includes("NVIDIA"),
    );
    if (gpuGroups.length === 0) fail(stackKey(plan), "no node group with an NVIDIA AMI");
    for (const group of gpuGroups) {
      const taints = asArray(inputAt(group, "taints"));
      const tainted = taints.some(
        (taint) =>
          typeof taint === "object" &&
          taint !== null &&
          !Array.isArray(taint) &&
          taint.key === "nvidia.com/gpu" &&
          taint.value === "true" &&
          taint.effect === "NO_SCHEDULE",
      );
      if (!tainted) fail(group, "missing taint nvidia.com/gpu=true:NoSchedule");
      const labels = inputAt(group, "labels");
      const pool =
        labels && typeof labels === "object" && !Array.isArray(labels) ? labels["ndt.io/node-pool"] : undefined;
      if (pool !== "gpu") fail(group, "missing label ndt.io/node-pool=gpu for the detector's node affinity");
      const types = asArray(inputAt(group, "instanceTypes"));
      if (types.some((type) => typeof type !== "string" || !/^g[56]\./.test(type)))
        fail(group, "instance types outside the g5/g6 families");
      if (environment === "dev" && inputAt(group, "scalingConfig.minSize") !== 0)
        fail(group, "dev GPU node group does not scale from 0");
    }
    return findings;
  },
};

export const a6NetworkPolicyEnforcement: Guardrail = {
  id: "A6",
  title: "vpc-cni add-on with network policy enforcement on",
  check({ plan }) {
    const { findings, fail } = findingsFor("A6");
    for (const cluster of ofType(plan, EKS)) {
      const enabled = inputAt(cluster, "vpcCniOptions.enableNetworkPolicy");
      if (enabled !== true && enabled !== "true")
        fail(cluster, "vpc-cni network policy enforcement is off: NetworkPolicies would be ignored");
    }
    return findings;
  },
};

/** Launch templates are named after their node group (`cluster-gpu` ↔ `cluster-gpu-nodes`). */
function launchTemplateOf(group: PlanResource, templates: Map<string, PlanResource>): PlanResource | undefined {
  return templates.get(`${group.name}-nodes`);
}

export const clusterGuardrails: Guardrail[] = [
  a1EndpointAccess,
  a2SecretsAndLogs,
  a3AuthenticationAndVersion,
  a4NodeHardening,
  a5GpuNodeGroup,
  a6NetworkPolicyEnforcement,
];
