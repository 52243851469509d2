import * as awsx from "@pulumi/awsx";
import * as pulumi from "@pulumi/pulumi";
import { applyTransform, type Transform } from "./transform.js";

export interface NetworkArgs {
  /** The VPC's address space; keep /16 so every tier gets room across three AZs. */
  cidrBlock: string;
  /** 3 in prod so a lost AZ leaves a quorum; 2 is the minimum EKS and Aurora accept. */
  availabilityZones: number;
  /**
   * `onePerAz` keeps egress alive through an AZ outage; `single` saves the others' hourly cost.
   * @default "onePerAz"
   */
  natGateways?: "single" | "onePerAz";
  /** The cluster name, for the subnet tags the AWS load balancer controller and ingress-nginx's NLB look for. */
  clusterName: string;
  transform?: { vpc?: Transform<awsx.ec2.VpcArgs> };
}

/**
 * The VPC: public subnets (load balancers, NAT), private subnets (nodes and pods), isolated subnets (data tiers,
 * no route to the internet), and a free S3 gateway endpoint so image traffic skips the NAT gateways.
 *
 * Cost: NAT gateways dominate: dev (1 NAT) about $35/month, prod (3 NATs) about $100/month, plus data processing.
 */
export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly publicSubnetIds: pulumi.Output<string[]>;
  readonly privateSubnetIds: pulumi.Output<string[]>;
  readonly isolatedSubnetIds: pulumi.Output<string[]>;
  readonly cidrBlock: string;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Network", name, {}, opts);
    const natStrategy = (args.natGateways ?? "onePerAz") === "onePerAz" ? "OnePerAz" : "Single";
    const clusterTag = `kubernetes.io/cluster/${args.clusterName}`;

    const vpc = new awsx.ec2.Vpc(
      `${name}-vpc`,
      applyTransform<awsx.ec2.VpcArgs>(
        {
          cidrBlock: args.cidrBlock,
          numberOfAvailabilityZones: args.availabilityZones,
          enableDnsHostnames: true,
          enableDnsSupport: true,
          natGateways: { strategy: natStrategy },
          subnetStrategy: "Auto",
          subnetSpecs: [
            { type: "Public", cidrMask: 22, tags: { "kubernetes.io/role/elb": "1", [clusterTag]: "shared" } },
            { type: "Private", cidrMask: 19, tags: { "kubernetes.io/role/internal-elb": "1", [clusterTag]: "shared" } },
            { type: "Isolated", cidrMask: 24, tags: { tier: "data" } },
          ],
          vpcEndpointSpecs: [{ serviceName: `com.amazonaws.${awsRegion()}.s3`, vpcEndpointType: "Gateway" }],
          tags: { Name: `${name}-vpc` },
        },
        args.transform?.vpc,
      ),
      { parent: this },
    );

    this.cidrBlock = args.cidrBlock;
    this.vpcId = vpc.vpcId;
    this.publicSubnetIds = vpc.publicSubnetIds;
    this.privateSubnetIds = vpc.privateSubnetIds;
    this.isolatedSubnetIds = vpc.isolatedSubnetIds;
    this.registerOutputs({ vpcId: this.vpcId });
  }
}

function awsRegion(): string {
  return new pulumi.Config("aws").require("region");
}
