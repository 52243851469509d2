import { describe, expect, it } from "vitest";
import type { PlanDocument, PlanResource } from "../../../stacks/plan/document.js";
import { mockIdOf } from "../../../stacks/plan/mocks.js";
import { planOf, resourceOf, resourcesOf } from "../../../stacks/plan/testing.js";
import { failing, findingsOf } from "../testing.js";

const AURORA = "aws:rds/cluster:Cluster";
const INSTANCE = "aws:rds/clusterInstance:ClusterInstance";
const CACHE = "aws:elasticache/replicationGroup:ReplicationGroup";
const BROKER = "aws:mq/broker:Broker";
const SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const AWS_MANAGED_KEY = "arn:aws:kms:eu-west-1:123456789012:alias/aws/rds";

const aurora = (plan: PlanDocument) => resourceOf(plan, AURORA, "database-cluster").inputs;
const instance = (plan: PlanDocument, index = 0) => resourceOf(plan, INSTANCE, `database-instance-${index}`).inputs;
const cache = (plan: PlanDocument) => resourceOf(plan, CACHE, "cache-group").inputs;
const broker = (plan: PlanDocument) => resourceOf(plan, BROKER, "broker-rabbitmq").inputs;
const rule = (plan: PlanDocument, name: string) => resourceOf(plan, INGRESS, name).inputs;

/** A security group and an ingress rule of its own, added to a plan as another component would declare them. */
function addGroup(plan: PlanDocument, name: string, ingress: Record<string, string | number>): void {
  const group: PlanResource = {
    type: SECURITY_GROUP,
    name,
    parent: null,
    inputs: { description: `test group ${name}`, vpcId: "vpc-network-vpc" },
  };
  const own: PlanResource = {
    type: INGRESS,
    name: `${name}-ingress`,
    parent: null,
    inputs: { securityGroupId: mockIdOf(name), ipProtocol: "tcp", description: "test rule", ...ingress },
  };
  plan.resources.push(group, own);
}

describe("data-tier guardrails A7–A10, A13", () => {
  it("pass on the prod and dev plans", async () => {
    expect(failing(await planOf("prod"))).toEqual([]);
    expect(failing(await planOf("dev"))).toEqual([]);
  });

  const breakages: [string, string, (plan: PlanDocument) => void][] = [
    [
      "A7",
      "storage under an AWS-managed key",
      (plan) => {
        aurora(plan).kmsKeyId = AWS_MANAGED_KEY;
      },
    ],
    [
      "A7",
      "unencrypted storage",
      (plan) => {
        aurora(plan).storageEncrypted = false;
      },
    ],
    [
      "A7",
      "deletion protection off",
      (plan) => {
        aurora(plan).deletionProtection = false;
      },
    ],
    [
      "A7",
      "IAM database auth off",
      (plan) => {
        aurora(plan).iamDatabaseAuthenticationEnabled = false;
      },
    ],
    [
      "A7",
      "3 days of backups",
      (plan) => {
        aurora(plan).backupRetentionPeriod = 3;
      },
    ],
    [
      "A7",
      "no PostgreSQL log export",
      (plan) => {
        aurora(plan).enabledCloudwatchLogsExports = [];
      },
    ],
    [
      "A7",
      "a master password from config",
      (plan) => {
        aurora(plan).manageMasterUserPassword = false;
        aurora(plan).masterPassword = "[secret]";
      },
    ],
    [
      "A7",
      "rds.force_ssl = 0",
      (plan) => {
        const group = resourceOf(plan, "aws:rds/clusterParameterGroup:ClusterParameterGroup", "database-params");
        for (const parameter of group.inputs.parameters as { name: string; value: string }[]) {
          if (parameter.name === "rds.force_ssl") parameter.value = "0";
        }
      },
    ],
    [
      "A8",
      "a publicly accessible reader",
      (plan) => {
        instance(plan, 2).publiclyAccessible = true;
      },
    ],
    [
      "A8",
      "Performance Insights off",
      (plan) => {
        instance(plan, 1).performanceInsightsEnabled = false;
      },
    ],
    [
      "A8",
      "Performance Insights under an AWS-managed key",
      (plan) => {
        instance(plan, 0).performanceInsightsKmsKeyId = AWS_MANAGED_KEY;
      },
    ],
    [
      "A8",
      "a writer without readers",
      (plan) => {
        plan.resources = plan.resources.filter((r) => r.type !== INSTANCE || r.name === "database-instance-0");
      },
    ],
    [
      "A8",
      "every instance in one AZ",
      (plan) => {
        for (const each of resourcesOf(plan, INSTANCE)) each.inputs.availabilityZone = "eu-west-1a";
      },
    ],
    [
      "A9",
      "at-rest encryption off",
      (plan) => {
        cache(plan).atRestEncryptionEnabled = false;
      },
    ],
    [
      "A9",
      "TLS off",
      (plan) => {
        cache(plan).transitEncryptionEnabled = false;
      },
    ],
    [
      "A9",
      "TLS only preferred",
      (plan) => {
        cache(plan).transitEncryptionMode = "preferred";
      },
    ],
    [
      "A9",
      "no AUTH token",
      (plan) => {
        delete cache(plan).authToken;
      },
    ],
    [
      "A9",
      "automatic failover off",
      (plan) => {
        cache(plan).automaticFailoverEnabled = false;
      },
    ],
    [
      "A9",
      "Multi-AZ off",
      (plan) => {
        cache(plan).multiAzEnabled = false;
      },
    ],
    [
      "A9",
      "a single node",
      (plan) => {
        cache(plan).numCacheClusters = 1;
      },
    ],
    [
      "A10",
      "a public broker",
      (plan) => {
        broker(plan).publiclyAccessible = true;
      },
    ],
    [
      "A10",
      "general logs off",
      (plan) => {
        broker(plan).logs = { general: false };
      },
    ],
    [
      "A10",
      "a single-instance prod broker",
      (plan) => {
        broker(plan).deploymentMode = "SINGLE_INSTANCE";
      },
    ],
    [
      "A10",
      "RabbitMQ 3.12",
      (plan) => {
        broker(plan).engineVersion = "3.12.13";
      },
    ],
    [
      "A10",
      "minor upgrades off",
      (plan) => {
        broker(plan).autoMinorVersionUpgrade = false;
      },
    ],
    [
      "A13",
      "a rule without a description",
      (plan) => {
        delete rule(plan, "database-from-cluster").description;
      },
    ],
    [
      "A13",
      "a security group with the provider's default description",
      (plan) => {
        resourceOf(plan, SECURITY_GROUP, "broker-sg").inputs.description = "Managed by Pulumi";
      },
    ],
    [
      "A13",
      "the cache admitting the VPC's addresses",
      (plan) => {
        const cacheRule = rule(plan, "cache-from-cluster");
        delete cacheRule.referencedSecurityGroupId;
        cacheRule.cidrIpv4 = "10.40.0.0/16";
      },
    ],
    [
      "A13",
      "the broker admitting another security group",
      (plan) => {
        rule(plan, "broker-amqps-from-cluster").referencedSecurityGroupId = "sg-bastion";
      },
    ],
    [
      "A13",
      "SSH open to the internet",
      (plan) => addGroup(plan, "bastion-sg", { cidrIpv4: "0.0.0.0/0", fromPort: 22, toPort: 22 }),
    ],
  ];
  for (const [id, what, breakIt] of breakages) {
    it(`${id} alone fails on ${what}`, async () => {
      const plan = await planOf("prod");
      breakIt(plan);
      expect(failing(plan)).toEqual([id]);
    });
  }

  it("findings name the resource and the reason", async () => {
    const plan = await planOf("prod");
    aurora(plan).iamDatabaseAuthenticationEnabled = false;
    rule(plan, "cache-from-cluster").referencedSecurityGroupId = "sg-bastion";
    expect(findingsOf(plan, "A7")).toEqual([
      { guardrail: "A7", resource: `${AURORA}::database-cluster`, reason: "IAM database authentication is off" },
    ]);
    expect(findingsOf(plan, "A13")).toEqual([
      {
        guardrail: "A13",
        resource: `${INGRESS}::cache-from-cluster`,
        reason: "rule: data tier admits sg-bastion, not the cluster's security group",
      },
    ]);
  });

  /** The prod plan plus an internet-facing load balancer whose group admits `cidrIpv4` on 443. */
  const publicLoadBalancerOn = async (cidrIpv4: string) => {
    const plan = await planOf("prod");
    addGroup(plan, "edge-sg", { cidrIpv4, fromPort: 443, toPort: 443 });
    plan.resources.push({
      type: "aws:lb/loadBalancer:LoadBalancer",
      name: "edge",
      parent: null,
      inputs: { internal: false, loadBalancerType: "network", securityGroups: [mockIdOf("edge-sg")] },
    });
    return plan;
  };

  it("A13 lets a public load balancer take the internet on 443 and 80, and nothing else", async () => {
    const plan = await publicLoadBalancerOn("0.0.0.0/0");
    expect(failing(plan)).toEqual([]);
    rule(plan, "edge-sg-ingress").fromPort = 0;
    rule(plan, "edge-sg-ingress").toPort = 65535;
    expect(failing(plan)).toEqual(["A13"]);
  });

  it("A13 reads any short public prefix as the internet: SSH open to 0.0.0.0/1 and 128.0.0.0/1", async () => {
    const plan = await planOf("prod");
    addGroup(plan, "bastion-sg", { cidrIpv4: "0.0.0.0/1", fromPort: 22, toPort: 22 });
    plan.resources.push({
      type: INGRESS,
      name: "bastion-sg-ingress-upper",
      parent: null,
      inputs: {
        securityGroupId: mockIdOf("bastion-sg"),
        ipProtocol: "tcp",
        description: "test rule",
        cidrIpv4: "128.0.0.0/1",
        fromPort: 22,
        toPort: 22,
      },
    });
    expect(failing(plan)).toEqual(["A13"]);
    expect(findingsOf(plan, "A13").map((finding) => finding.reason)).toEqual([
      "rule: ingress open to the internet (0.0.0.0/1)",
      "rule: ingress open to the internet (128.0.0.0/1)",
    ]);
  });

  it("A13 reads a short public IPv6 prefix as the internet, and private or VPC ranges as not", async () => {
    const plan = await planOf("prod");
    addGroup(plan, "bastion-sg", { cidrIpv6: "2000::/3", fromPort: 22, toPort: 22 });
    expect(failing(plan)).toEqual(["A13"]);

    const privately = await planOf("prod");
    addGroup(privately, "admin-sg", { cidrIpv4: "10.0.0.0/8", fromPort: 22, toPort: 22 });
    addGroup(privately, "admin-v6-sg", { cidrIpv6: "fd00::/8", fromPort: 22, toPort: 22 });
    addGroup(privately, "office-sg", { cidrIpv4: "203.0.113.0/24", fromPort: 22, toPort: 22 });
    expect(failing(privately)).toEqual([]);
  });

  it("A13 lets the public load balancer take a short public prefix on 443 only", async () => {
    const plan = await publicLoadBalancerOn("0.0.0.0/1");
    expect(failing(plan)).toEqual([]);
    rule(plan, "edge-sg-ingress").fromPort = 22;
    rule(plan, "edge-sg-ingress").toPort = 22;
    expect(failing(plan)).toEqual(["A13"]);
  });

  it("A13 cannot judge data tiers without knowing the cluster's security group", async () => {
    const plan = await planOf("prod");
    delete plan.outputs.clusterSecurityGroupId;
    expect(findingsOf(plan, "A13").map((finding) => finding.resource)).toEqual([
      "pulumi:pulumi:Stack::ndt-platform-prod",
    ]);
  });

  it("dev keeps its relaxations (one instance, no PI, no protection, 1 day, one node, single broker), not the rest", async () => {
    const dev = await planOf("dev");
    expect([aurora(dev).deletionProtection, aurora(dev).backupRetentionPeriod]).toEqual([false, 1]);
    expect([resourcesOf(dev, INSTANCE).length, instance(dev).performanceInsightsEnabled]).toEqual([1, false]);
    expect([cache(dev).numCacheClusters, broker(dev).deploymentMode]).toEqual([1, "SINGLE_INSTANCE"]);
    expect(failing(dev)).toEqual([]);

    const breaks: [string, (plan: PlanDocument) => void][] = [
      [
        "A7",
        (plan) => {
          aurora(plan).backupRetentionPeriod = 0;
        },
      ],
      [
        "A7",
        (plan) => {
          aurora(plan).iamDatabaseAuthenticationEnabled = false;
        },
      ],
      [
        "A8",
        (plan) => {
          instance(plan).publiclyAccessible = true;
        },
      ],
      [
        "A9",
        (plan) => {
          cache(plan).transitEncryptionEnabled = false;
        },
      ],
      [
        "A10",
        (plan) => {
          broker(plan).publiclyAccessible = true;
        },
      ],
      [
        "A13",
        (plan) => {
          rule(plan, "database-from-cluster").referencedSecurityGroupId = "sg-anything";
        },
      ],
    ];
    for (const [id, breakIt] of breaks) {
      const plan = await planOf("dev");
      breakIt(plan);
      expect(failing(plan)).toEqual([id]);
    }
  });
});
