import * as aws from "@pulumi/aws";
import * as eks from "@pulumi/eks";
import * as pulumi from "@pulumi/pulumi";
import { applyTransform, type Transform } from "./transform.js";

/** Every control-plane log type EKS offers (A2). */
export const CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"] as const;

/** The taint that keeps everything but GPU work off the GPU nodes (A5). */
export const GPU_TAINT = { key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" } as const;
/** The label the detection worker's node affinity selects. */
export const NODE_POOL_LABEL = "ndt.io/node-pool";

export interface NodeGroupArgs {
  /** Instance types, most preferred first. GPU groups take g5/g6 types. */
  instanceTypes: string[];
  /** EKS-optimised AMI family; GPU groups need an NVIDIA variant (drivers and container toolkit included). */
  amiType: string;
  /** SPOT is fine where interruptions are cheap (dev); prod runs ON_DEMAND. */
  capacityType: "ON_DEMAND" | "SPOT";
  /** 0 lets an idle GPU group cost nothing (dev). */
  minSize: number;
  desiredSize: number;
  maxSize: number;
  diskSizeGiB: number;
}

export interface ClusterArgs {
  vpcId: pulumi.Input<string>;
  /** Nodes live here: private subnets, no public IPs (A4). */
  privateSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Only internet-facing load balancers use these. */
  publicSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** A pinned, supported version (A3), e.g. "1.33". */
  kubernetesVersion: string;
  /**
   * CIDRs allowed to reach a public API endpoint; empty keeps the endpoint private (A1).
   * @default []
   */
  publicAccessCidrs?: string[];
  /**
   * IAM roles given cluster-admin through access entries (break-glass); not the role creating the cluster, which EKS
   * gives its own entry.
   */
  adminRoleArns: string[];
  /**
   * CIDR (the VPC's) allowed to reach the private API endpoint on 443: the in-VPC runner or SSM host that deploys.
   * The EKS-made cluster security group on the endpoint admits only itself otherwise.
   */
  privateEndpointClientCidr: string;
  /** Customer-managed key for Kubernetes secrets and node volumes (A2, A4). */
  kmsKeyArn: pulumi.Input<string>;
  /** Key for the control-plane log group. */
  logsKmsKeyArn: pulumi.Input<string>;
  logRetentionDays: number;
  systemNodes: NodeGroupArgs;
  gpuNodes: NodeGroupArgs;
  /** Refuse deletion of the cluster (prod). @default false */
  deletionProtection?: boolean;
  transform?: {
    cluster?: Transform<eks.ClusterArgs>;
    systemNodeGroup?: Transform<eks.ManagedNodeGroupArgs>;
    gpuNodeGroup?: Transform<eks.ManagedNodeGroupArgs>;
  };
}

/**
 * EKS with access entries (authentication mode API), IRSA, KMS-encrypted secrets, every control-plane log, managed
 * add-ons (vpc-cni with network policy enforcement, coredns, kube-proxy, EBS CSI), a CPU/system node group and a GPU
 * node group behind an `nvidia.com/gpu` taint. Nodes launch from templates that require IMDSv2 with hop limit 1 and
 * encrypt their volumes.
 *
 * Cost: control plane $73/month. dev: 2 spot m6i.large (~$60) and GPU nodes at 0 until work arrives (g6.xlarge spot
 * ~$0.35/h). prod: 3 on-demand m6i.xlarge (~$420) and 1–6 g6.2xlarge (~$710 each).
 */
export class Cluster extends pulumi.ComponentResource {
  readonly name: string;
  readonly kubeconfig: pulumi.Output<unknown>;
  readonly kubeconfigJson: pulumi.Output<string>;
  /** The EKS-created security group every node and pod ENI carries: data tiers admit this one only (A13). */
  readonly clusterSecurityGroupId: pulumi.Output<string>;
  readonly oidcProviderArn: pulumi.Output<string>;
  /** Issuer host and path, without `https://`: the prefix of IRSA trust-policy condition keys. */
  readonly oidcIssuer: pulumi.Output<string>;
  readonly hasGpuNodes: boolean;
  private readonly componentName: string;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Cluster", name, {}, opts);
    this.componentName = name;
    this.name = `ndt-${pulumi.getStack()}`;
    const publicAccessCidrs = args.publicAccessCidrs ?? [];

    const logGroup = createControlPlaneLogGroup(this, this.name);
    const nodeRole = createNodeRole(this);
    const eksCluster = createCluster(this, this.name, logGroup);
    this.kubeconfig = eksCluster.kubeconfig;
    this.kubeconfigJson = eksCluster.kubeconfigJson;
    this.clusterSecurityGroupId = eksCluster.clusterSecurityGroupId;
    new aws.vpc.SecurityGroupIngressRule(
      `${name}-api-from-vpc`,
      {
        securityGroupId: eksCluster.clusterSecurityGroupId,
        cidrIpv4: args.privateEndpointClientCidr,
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        description: "Kubernetes API (private endpoint) from inside the VPC: the deploying runner or SSM host",
      },
      { parent: this },
    );
    this.oidcProviderArn = eksCluster.oidcProviderArn;
    this.oidcIssuer = eksCluster.oidcIssuer;
    createEbsCsiAddon(this);
    createNodeGroup(this, "system", args.systemNodes, {}, [], args.transform?.systemNodeGroup);
    createNodeGroup(
      this,
      "gpu",
      args.gpuNodes,
      { "nvidia.com/gpu.present": "true" },
      [GPU_TAINT],
      args.transform?.gpuNodeGroup,
    );
    this.hasGpuNodes = args.gpuNodes.maxSize > 0;
    this.registerOutputs({ kubeconfig: this.kubeconfig, oidcProviderArn: this.oidcProviderArn });

    function createControlPlaneLogGroup(parent: Cluster, clusterName: string): aws.cloudwatch.LogGroup {
      // EKS writes to this fixed name; creating it first sets retention and encryption instead of "never expire".
      return new aws.cloudwatch.LogGroup(
        `${name}-control-plane-logs`,
        {
          name: `/aws/eks/${clusterName}/cluster`,
          retentionInDays: args.logRetentionDays,
          kmsKeyId: args.logsKmsKeyArn,
        },
        { parent },
      );
    }

    function createNodeRole(parent: Cluster): aws.iam.Role {
      const role = new aws.iam.Role(
        `${name}-node-role`,
        {
          description: "EKS worker nodes",
          assumeRolePolicy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
          }),
        },
        { parent },
      );
      const managedPolicies = {
        worker: "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        // vpc-cni is created with the cluster, before its OIDC provider exists, so its rights stay on the node role.
        cni: "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        registry: "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        ssm: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
      };
      for (const [purpose, policyArn] of Object.entries(managedPolicies)) {
        new aws.iam.RolePolicyAttachment(`${name}-node-${purpose}`, { role: role.name, policyArn }, { parent });
      }
      return role;
    }

    function createCluster(parent: Cluster, clusterName: string, logs: aws.cloudwatch.LogGroup): eks.Cluster {
      const accessEntries = Object.fromEntries(
        args.adminRoleArns.map((principalArn, index) => [
          `admin-${index}`,
          {
            principalArn,
            accessPolicies: {
              admin: {
                policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                accessScope: { type: "cluster" },
              },
            },
          },
        ]),
      );
      return new eks.Cluster(
        `${name}-eks`,
        applyTransform<eks.ClusterArgs>(
          {
            name: clusterName,
            version: args.kubernetesVersion,
            vpcId: args.vpcId,
            privateSubnetIds: args.privateSubnetIds,
            publicSubnetIds: args.publicSubnetIds,
            nodeAssociatePublicIpAddress: false,
            endpointPrivateAccess: true,
            endpointPublicAccess: publicAccessCidrs.length > 0,
            ...(publicAccessCidrs.length > 0 ? { publicAccessCidrs } : {}),
            authenticationMode: eks.AuthenticationMode.Api,
            accessEntries,
            createOidcProvider: true,
            encryptionConfigKeyArn: args.kmsKeyArn,
            enabledClusterLogTypes: [...CONTROL_PLANE_LOG_TYPES],
            skipDefaultNodeGroup: true,
            // Nodes and pods share the EKS-created security group, which the data tiers admit by id.
            skipDefaultSecurityGroups: true,
            deletionProtection: args.deletionProtection ?? false,
            vpcCniOptions: { enableNetworkPolicy: true },
            corednsAddonOptions: { enabled: true },
            kubeProxyAddonOptions: { enabled: true },
            tags: { "ndt.io/cluster": clusterName },
          },
          args.transform?.cluster,
        ),
        { parent, dependsOn: [logs] },
      );
    }

    function createNodeGroup(
      parent: Cluster,
      pool: "system" | "gpu",
      group: NodeGroupArgs,
      extraLabels: Record<string, string>,
      taints: (typeof GPU_TAINT)[],
      transform: Transform<eks.ManagedNodeGroupArgs> | undefined,
    ): eks.ManagedNodeGroup {
      const bottlerocket = group.amiType.startsWith("BOTTLEROCKET");
      const launchTemplate = new aws.ec2.LaunchTemplate(
        `${name}-${pool}-nodes`,
        {
          description: `EKS ${pool} nodes: IMDSv2 only, hop limit 1 (pods cannot reach node credentials), encrypted disk`,
          metadataOptions: {
            httpEndpoint: "enabled",
            httpTokens: "required",
            httpPutResponseHopLimit: 1,
            instanceMetadataTags: "disabled",
          },
          blockDeviceMappings: [
            {
              // Bottlerocket keeps images and pods on its second (data) volume.
              deviceName: bottlerocket ? "/dev/xvdb" : "/dev/xvda",
              ebs: {
                volumeSize: group.diskSizeGiB,
                volumeType: "gp3",
                encrypted: "true",
                kmsKeyId: args.kmsKeyArn,
                deleteOnTermination: "true",
              },
            },
          ],
          monitoring: { enabled: true },
          tagSpecifications: [{ resourceType: "instance", tags: { Name: `${parent.name}-${pool}` } }],
        },
        { parent },
      );
      return new eks.ManagedNodeGroup(
        `${name}-${pool}`,
        applyTransform<eks.ManagedNodeGroupArgs>(
          {
            cluster: eksCluster,
            nodeGroupNamePrefix: `${pool}-`,
            nodeRole,
            subnetIds: args.privateSubnetIds,
            instanceTypes: group.instanceTypes,
            amiType: group.amiType,
            capacityType: group.capacityType,
            scalingConfig: { minSize: group.minSize, desiredSize: group.desiredSize, maxSize: group.maxSize },
            // The autoscaler owns the desired size after creation.
            ignoreScalingChanges: true,
            launchTemplate: { id: launchTemplate.id, version: pulumi.interpolate`${launchTemplate.latestVersion}` },
            labels: { [NODE_POOL_LABEL]: pool, ...extraLabels },
            taints: [...taints],
          },
          transform,
        ),
        { parent },
      );
    }

    function createEbsCsiAddon(parent: Cluster): aws.eks.Addon {
      const role = parent.serviceAccountRole("ebs-csi", "kube-system", "ebs-csi-controller-sa", [
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
      ]);
      return new aws.eks.Addon(
        `${name}-ebs-csi`,
        {
          clusterName: parent.name,
          addonName: "aws-ebs-csi-driver",
          serviceAccountRoleArn: role.arn,
          resolveConflictsOnCreate: "OVERWRITE",
          resolveConflictsOnUpdate: "PRESERVE",
        },
        { parent, dependsOn: [eksCluster] },
      );
    }
  }

  /**
   * An IAM role that one Kubernetes service account assumes through IRSA (A14), with the given managed policies.
   * Grants from other components (`storage.grantReadWrite(role, prefix)`) add inline policies to it.
   */
  serviceAccountRole(
    roleName: string,
    namespace: string,
    serviceAccount: string,
    managedPolicyArns: string[] = [],
  ): aws.iam.Role {
    const trust = pulumi.all([this.oidcProviderArn, this.oidcIssuer]).apply(([providerArn, issuer]) =>
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: { Federated: providerArn },
            Action: "sts:AssumeRoleWithWebIdentity",
            Condition: {
              StringEquals: {
                [`${issuer}:sub`]: `system:serviceaccount:${namespace}:${serviceAccount}`,
                [`${issuer}:aud`]: "sts.amazonaws.com",
              },
            },
          },
        ],
      }),
    );
    const role = new aws.iam.Role(
      `${this.componentName}-irsa-${roleName}`,
      { description: `IRSA: ${namespace}/${serviceAccount}`, assumeRolePolicy: trust },
      { parent: this },
    );
    for (const [index, policyArn] of managedPolicyArns.entries()) {
      new aws.iam.RolePolicyAttachment(
        `${this.componentName}-irsa-${roleName}-${index}`,
        { role: role.name, policyArn },
        { parent: this },
      );
    }
    return role;
  }
}
