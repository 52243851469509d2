import { describe, expect, it } from "vitest";
import { planOf, resourceOf, resourcesOf } from "../../stacks/plan/testing.js";

describe("Network", () => {
  it("prod spans 3 AZs with a NAT gateway per AZ; dev 2 AZs with one NAT", async () => {
    const prod = resourceOf(await planOf("prod"), "awsx:ec2:Vpc", "network-vpc");
    const dev = resourceOf(await planOf("dev"), "awsx:ec2:Vpc", "network-vpc");
    expect([prod.inputs.numberOfAvailabilityZones, prod.inputs.natGateways]).toEqual([3, { strategy: "OnePerAz" }]);
    expect([dev.inputs.numberOfAvailabilityZones, dev.inputs.natGateways]).toEqual([2, { strategy: "Single" }]);
    expect(prod.parent).toBe("ndt:aws:Network::network");
  });

  it("tags subnets for EKS load balancers and keeps data tiers isolated", async () => {
    const vpc = resourceOf(await planOf("prod"), "awsx:ec2:Vpc", "network-vpc");
    expect(vpc.inputs.subnetSpecs).toEqual([
      {
        type: "Public",
        cidrMask: 22,
        tags: { "kubernetes.io/role/elb": "1", "kubernetes.io/cluster/ndt-prod": "shared" },
      },
      {
        type: "Private",
        cidrMask: 19,
        tags: { "kubernetes.io/role/internal-elb": "1", "kubernetes.io/cluster/ndt-prod": "shared" },
      },
      { type: "Isolated", cidrMask: 24, tags: { tier: "data" } },
    ]);
  });
});

describe("Cluster", () => {
  it("prod: private endpoint, API auth with access entries, IRSA, KMS secrets, every control-plane log", async () => {
    const eks = resourceOf(await planOf("prod"), "eks:index:Cluster", "cluster-eks");
    expect(eks.inputs).toMatchObject({
      name: "ndt-prod",
      version: "1.33",
      endpointPrivateAccess: true,
      endpointPublicAccess: false,
      authenticationMode: "API",
      createOidcProvider: true,
      encryptionConfigKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/keys-cluster",
      enabledClusterLogTypes: ["api", "audit", "authenticator", "controllerManager", "scheduler"],
      skipDefaultNodeGroup: true,
      nodeAssociatePublicIpAddress: false,
      deletionProtection: true,
      vpcCniOptions: { enableNetworkPolicy: true },
      corednsAddonOptions: { enabled: true },
      kubeProxyAddonOptions: { enabled: true },
    });
    expect(eks.inputs.publicAccessCidrs).toBeUndefined();
    // break-glass only: the deploy role that creates the cluster gets EKS's own creator entry (a second would be a 409)
    const entries = Object.values(eks.inputs.accessEntries as Record<string, { principalArn: string }>);
    expect(entries.map((entry) => entry.principalArn)).toEqual(["arn:aws:iam::123456789012:role/ndt-break-glass"]);
  });

  it("admits the VPC (the deploying runner) to the private API endpoint on 443, and nothing wider", async () => {
    const plan = await planOf("prod");
    const rule = resourceOf(plan, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "cluster-api-from-vpc");
    expect(rule.inputs).toMatchObject({ cidrIpv4: "10.40.0.0/16", ipProtocol: "tcp", fromPort: 443, toPort: 443 });
    // on the EKS-made cluster security group (the mock names it after the eks.Cluster), the endpoint's own
    expect(rule.inputs.securityGroupId).toBe("sg-cluster-eks-cluster");
  });

  it("dev: public endpoint only to the listed CIDRs", async () => {
    const eks = resourceOf(await planOf("dev"), "eks:index:Cluster", "cluster-eks");
    expect(eks.inputs).toMatchObject({
      endpointPublicAccess: true,
      publicAccessCidrs: ["203.0.113.0/24", "198.51.100.10/32"],
      deletionProtection: false,
    });
  });

  it("installs the EBS CSI driver with its own IRSA role", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, "aws:eks/addon:Addon", "cluster-ebs-csi").inputs).toMatchObject({
      addonName: "aws-ebs-csi-driver",
      clusterName: "ndt-prod",
      serviceAccountRoleArn: "arn:aws:iam::123456789012:role/cluster-irsa-ebs-csi",
    });
    const trust = JSON.parse(
      String(resourceOf(plan, "aws:iam/role:Role", "cluster-irsa-ebs-csi").inputs.assumeRolePolicy),
    );
    expect(trust.Statement[0].Condition.StringEquals).toEqual({
      "oidc.eks.eu-west-1.amazonaws.com/id/CLUSTER-EKS:sub": "system:serviceaccount:kube-system:ebs-csi-controller-sa",
      "oidc.eks.eu-west-1.amazonaws.com/id/CLUSTER-EKS:aud": "sts.amazonaws.com",
    });
  });

  it("prod node groups are on-demand; the GPU group is tainted, labelled and never below 1 node", async () => {
    const plan = await planOf("prod");
    const system = resourceOf(plan, "eks:index:ManagedNodeGroup", "cluster-system");
    const gpu = resourceOf(plan, "eks:index:ManagedNodeGroup", "cluster-gpu");
    expect(system.inputs).toMatchObject({ capacityType: "ON_DEMAND", scalingConfig: { minSize: 3, maxSize: 9 } });
    expect(gpu.inputs).toMatchObject({
      amiType: "AL2023_x86_64_NVIDIA",
      capacityType: "ON_DEMAND",
      instanceTypes: ["g6.2xlarge", "g5.2xlarge"],
      taints: [{ key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" }],
      labels: { "ndt.io/node-pool": "gpu", "nvidia.com/gpu.present": "true" },
      scalingConfig: { minSize: 1, desiredSize: 2, maxSize: 6 },
    });
  });

  it("dev node groups run on spot and the GPU group scales from zero", async () => {
    const plan = await planOf("dev");
    expect(resourceOf(plan, "eks:index:ManagedNodeGroup", "cluster-system").inputs.capacityType).toBe("SPOT");
    expect(resourceOf(plan, "eks:index:ManagedNodeGroup", "cluster-gpu").inputs.scalingConfig).toEqual({
      minSize: 0,
      desiredSize: 0,
      maxSize: 2,
    });
  });

  it("launch templates require IMDSv2 with hop limit 1 and encrypt node volumes with the cluster key", async () => {
    const templates = resourcesOf(await planOf("prod"), "aws:ec2/launchTemplate:LaunchTemplate");
    expect(templates.map((template) => template.name).sort()).toEqual(["cluster-gpu-nodes", "cluster-system-nodes"]);
    for (const template of templates) {
      expect(template.inputs.metadataOptions).toMatchObject({ httpTokens: "required", httpPutResponseHopLimit: 1 });
      expect(template.inputs.blockDeviceMappings).toEqual([
        expect.objectContaining({
          ebs: expect.objectContaining({
            encrypted: "true",
            kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/keys-cluster",
          }),
        }),
      ]);
    }
  });

  it("keeps control-plane logs encrypted, for the configured time", async () => {
    const logs = resourceOf(await planOf("prod"), "aws:cloudwatch/logGroup:LogGroup", "cluster-control-plane-logs");
    expect(logs.inputs).toMatchObject({ name: "/aws/eks/ndt-prod/cluster", retentionInDays: 365 });
    expect(String(logs.inputs.kmsKeyId)).toContain(":key/keys-logs");
  });
});

describe("Keys", () => {
  it("creates one rotating customer-managed key per purpose", async () => {
    const keys = resourcesOf(await planOf("prod"), "aws:kms/key:Key");
    expect(keys.map((key) => key.name).sort()).toEqual(["keys-cluster", "keys-data", "keys-logs", "keys-storage"]);
    for (const key of keys) expect(key.inputs).toMatchObject({ enableKeyRotation: true, deletionWindowInDays: 30 });
  });

  it("lets the Auto Scaling role use the cluster key, so encrypted node volumes can launch", async () => {
    const key = resourceOf(await planOf("prod"), "aws:kms/key:Key", "keys-cluster");
    const statements = JSON.parse(String(key.inputs.policy)).Statement as {
      Sid: string;
      Principal: { AWS?: string };
    }[];
    expect(statements.find((statement) => statement.Sid === "AutoScalingUsesKeyForNodeVolumes")?.Principal.AWS).toBe(
      "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
    );
  });
});
