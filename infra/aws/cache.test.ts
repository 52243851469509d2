import { describe, expect, it } from "vitest";
import { mockIdOf } from "../../stacks/plan/mocks.js";
import { planOf, resourceOf, resourcesOf } from "../../stacks/plan/testing.js";
import { validateCacheArgs } from "./cache.js";

const GROUP = "aws:elasticache/replicationGroup:ReplicationGroup";
const DATA_KEY = "arn:aws:kms:eu-west-1:123456789012:key/keys-data";

describe("Cache", () => {
  it("prod: three nodes, Multi-AZ with automatic failover, TLS required, CMK at rest, an AUTH token", async () => {
    const group = resourceOf(await planOf("prod"), GROUP, "cache-group");
    expect(group.parent).toBe("ndt:aws:Cache::cache");
    expect(group.inputs).toMatchObject({
      engine: "valkey",
      engineVersion: "8.0",
      nodeType: "cache.r7g.large",
      numCacheClusters: 3,
      multiAzEnabled: true,
      automaticFailoverEnabled: true,
      atRestEncryptionEnabled: true,
      kmsKeyId: DATA_KEY,
      transitEncryptionEnabled: true,
      transitEncryptionMode: "required",
      authToken: "[secret]",
      snapshotRetentionLimit: 7,
      subnetGroupName: mockIdOf("cache-subnets"),
      securityGroupIds: [mockIdOf("cache-sg")],
      logDeliveryConfigurations: [
        {
          destination: mockIdOf("cache-slow-log"),
          destinationType: "cloudwatch-logs",
          logFormat: "json",
          logType: "slow-log",
        },
      ],
    });
  });

  it("dev: one node without failover, but the same encryption and AUTH", async () => {
    const group = resourceOf(await planOf("dev"), GROUP, "cache-group");
    expect(group.inputs).toMatchObject({
      numCacheClusters: 1,
      multiAzEnabled: false,
      automaticFailoverEnabled: false,
      atRestEncryptionEnabled: true,
      transitEncryptionEnabled: true,
      authToken: "[secret]",
      snapshotRetentionLimit: 1,
    });
  });

  it("keeps the AUTH token only as a secret: generated, stored in Secrets Manager under the CMK, never in the plan", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, "random:index/randomPassword:RandomPassword", "cache-auth-token").inputs).toMatchObject({
      length: 64,
      special: false,
    });
    expect(resourceOf(plan, "aws:secretsmanager/secret:Secret", "cache-auth").inputs.kmsKeyId).toBe(DATA_KEY);
    expect(resourceOf(plan, "aws:secretsmanager/secretVersion:SecretVersion", "cache-auth").inputs).toEqual({
      secretId: mockIdOf("cache-auth"),
      secretString: "[secret]",
    });
    expect(JSON.stringify(plan)).not.toContain("mock-password-cache-auth-token");
  });

  it("lives on the isolated subnets and admits 6379 from the cluster's security group only", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, "aws:elasticache/subnetGroup:SubnetGroup", "cache-subnets").inputs.subnetIds).toHaveLength(
      3,
    );
    const rules = resourcesOf(plan, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter(
      (rule) => rule.inputs.securityGroupId === mockIdOf("cache-sg"),
    );
    expect(rules.map((rule) => rule.inputs)).toEqual([
      expect.objectContaining({ referencedSecurityGroupId: "sg-cluster-eks-cluster", fromPort: 6379, toPort: 6379 }),
    ]);
    expect(plan.outputs.cacheEndpoint).toBe("master.cache-group.mock.eu-west-1.cache.amazonaws.com");
  });

  it("validation refuses Multi-AZ without a replica", () => {
    const problems = validateCacheArgs({
      vpcId: "vpc",
      subnetIds: [],
      clientSecurityGroupId: "sg",
      kmsKeyArn: "key",
      engineVersion: "8.0",
      nodeType: "cache.t4g.small",
      nodes: 1,
      multiAz: true,
    });
    expect(problems).toEqual([{ path: "multiAz", reason: "needs at least 2 nodes (a replica to fail over to)" }]);
  });
});
