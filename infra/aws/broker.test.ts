import { describe, expect, it } from "vitest";
import { mockIdOf } from "../../stacks/plan/mocks.js";
import { planOf, resourceOf, resourcesOf } from "../../stacks/plan/testing.js";
import { validateBrokerArgs } from "./broker.js";

const BROKER = "aws:mq/broker:Broker";

describe("Broker", () => {
  it("prod: a private RabbitMQ 3.13 cluster across the three isolated subnets, general logs, auto minor upgrades", async () => {
    const broker = resourceOf(await planOf("prod"), BROKER, "broker-rabbitmq");
    expect(broker.parent).toBe("ndt:aws:Broker::broker");
    expect(broker.inputs).toMatchObject({
      engineType: "RabbitMQ",
      engineVersion: "3.13",
      hostInstanceType: "mq.m5.large",
      deploymentMode: "CLUSTER_MULTI_AZ",
      publiclyAccessible: false,
      autoMinorVersionUpgrade: true,
      logs: { general: true },
      subnetIds: ["subnet-network-vpc-isolated-0", "subnet-network-vpc-isolated-1", "subnet-network-vpc-isolated-2"],
      securityGroups: [mockIdOf("broker-sg")],
      users: [{ username: "ndt", password: "[secret]" }],
    });
  });

  it("dev: a single instance in one subnet", async () => {
    const broker = resourceOf(await planOf("dev"), BROKER, "broker-rabbitmq");
    expect(broker.inputs).toMatchObject({
      deploymentMode: "SINGLE_INSTANCE",
      hostInstanceType: "mq.t3.micro",
      subnetIds: ["subnet-network-vpc-isolated-0"],
      publiclyAccessible: false,
    });
  });

  it("keeps the credentials only as secrets, in Secrets Manager under the CMK", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, "aws:secretsmanager/secret:Secret", "broker-credentials").inputs.kmsKeyId).toBe(
      "arn:aws:kms:eu-west-1:123456789012:key/keys-data",
    );
    expect(
      resourceOf(plan, "aws:secretsmanager/secretVersion:SecretVersion", "broker-credentials").inputs.secretString,
    ).toBe("[secret]");
    expect(JSON.stringify(plan)).not.toContain("mock-password-broker-password");
  });

  it("admits AMQPS (5671) and the management API (443) from the cluster's security group only", async () => {
    const plan = await planOf("prod");
    const rules = resourcesOf(plan, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter(
      (rule) => rule.inputs.securityGroupId === mockIdOf("broker-sg"),
    );
    expect(
      rules.map((rule) => [rule.inputs.referencedSecurityGroupId, rule.inputs.fromPort, rule.inputs.toPort]),
    ).toEqual([
      ["sg-cluster-eks-cluster", 5671, 5671],
      ["sg-cluster-eks-cluster", 443, 443],
    ]);
    expect(plan.outputs.brokerUrl).toBe("amqps://broker-rabbitmq.mq.eu-west-1.amazonaws.com:5671");
    expect(plan.outputs.brokerManagementUrl).toBe("https://broker-rabbitmq.mq.eu-west-1.amazonaws.com");
  });

  it("validation refuses RabbitMQ before 3.13, the guest user and a clustered t3", () => {
    const problems = validateBrokerArgs({
      vpcId: "vpc",
      subnetIds: [],
      clientSecurityGroupId: "sg",
      kmsKeyArn: "key",
      engineVersion: "3.12",
      instanceType: "mq.t3.micro",
      deploymentMode: "CLUSTER_MULTI_AZ",
      username: "guest",
    });
    expect(problems.map((problem) => problem.path)).toEqual(["engineVersion", "username", "instanceType"]);
  });
});
