import { describe, expect, it } from "vitest";
import type { PlanDocument, PlanResource } from "../../stacks/plan/document.js";
import { mockIdOf } from "../../stacks/plan/mocks.js";
import { planOf, resourceOf, resourcesOf } from "../../stacks/plan/testing.js";
import { validateDatabaseArgs } from "./database.js";

const CLUSTER_SG = "sg-cluster-eks-cluster";
const DATA_KEY = "arn:aws:kms:eu-west-1:123456789012:key/keys-data";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule";

const rulesOf = (plan: PlanDocument, type: string, groupName: string): PlanResource[] =>
  resourcesOf(plan, type).filter((rule) => rule.inputs.securityGroupId === mockIdOf(groupName));

describe("Database", () => {
  it("prod: a writer and two readers, each in its own AZ, private, Performance Insights under the CMK", async () => {
    const plan = await planOf("prod");
    const instances = resourcesOf(plan, "aws:rds/clusterInstance:ClusterInstance");
    expect(instances).toHaveLength(3);
    expect(new Set(instances.map((instance) => instance.inputs.availabilityZone)).size).toBe(3);
    for (const instance of instances) {
      expect(instance.parent).toBe("ndt:aws:Database::database");
      expect(instance.inputs).toMatchObject({
        clusterIdentifier: mockIdOf("database-cluster"),
        instanceClass: "db.r7g.large",
        publiclyAccessible: false,
        autoMinorVersionUpgrade: true,
        performanceInsightsEnabled: true,
        performanceInsightsKmsKeyId: DATA_KEY,
      });
    }
  });

  it("dev: one instance, no Performance Insights", async () => {
    const instances = resourcesOf(await planOf("dev"), "aws:rds/clusterInstance:ClusterInstance");
    expect(instances.map((instance) => instance.inputs.instanceClass)).toEqual(["db.t4g.medium"]);
    expect(instances[0]?.inputs.performanceInsightsEnabled).toBe(false);
    expect(instances[0]?.inputs.performanceInsightsKmsKeyId).toBeUndefined();
  });

  it("prod cluster: CMK storage, IAM auth, RDS-managed master secret under the CMK, logs, backups, protection", async () => {
    const cluster = resourceOf(await planOf("prod"), "aws:rds/cluster:Cluster", "database-cluster");
    expect(cluster.inputs).toMatchObject({
      engine: "aurora-postgresql",
      engineVersion: "16.6",
      storageEncrypted: true,
      kmsKeyId: DATA_KEY,
      iamDatabaseAuthenticationEnabled: true,
      manageMasterUserPassword: true,
      masterUserSecretKmsKeyId: DATA_KEY,
      enabledCloudwatchLogsExports: ["postgresql"],
      backupRetentionPeriod: 14,
      deletionProtection: true,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: "ndt-prod-final",
      copyTagsToSnapshot: true,
      dbSubnetGroupName: mockIdOf("database-subnets"),
      dbClusterParameterGroupName: mockIdOf("database-params"),
      vpcSecurityGroupIds: [mockIdOf("database-sg")],
    });
    expect(cluster.inputs.masterPassword).toBeUndefined();
  });

  it("dev cluster: no deletion protection, no final snapshot, one day of backups", async () => {
    const cluster = resourceOf(await planOf("dev"), "aws:rds/cluster:Cluster", "database-cluster");
    expect(cluster.inputs).toMatchObject({
      deletionProtection: false,
      skipFinalSnapshot: true,
      backupRetentionPeriod: 1,
    });
    expect(cluster.inputs.finalSnapshotIdentifier).toBeUndefined();
  });

  it("forces TLS through the cluster parameter group, and logs slow queries, lock waits and DDL", async () => {
    const group = resourceOf(
      await planOf("prod"),
      "aws:rds/clusterParameterGroup:ClusterParameterGroup",
      "database-params",
    );
    expect(group.inputs.family).toBe("aurora-postgresql16");
    const parameters = Object.fromEntries(
      (group.inputs.parameters as { name: string; value: string }[]).map((p) => [p.name, p.value]),
    );
    expect(parameters).toMatchObject({
      "rds.force_ssl": "1",
      log_min_duration_statement: "1000",
      log_lock_waits: "1",
      log_statement: "ddl",
    });
  });

  it("lives on the isolated subnets and admits 5432 from the cluster's security group only", async () => {
    const plan = await planOf("dev");
    expect(resourceOf(plan, "aws:rds/subnetGroup:SubnetGroup", "database-subnets").inputs.subnetIds).toEqual([
      "subnet-network-vpc-isolated-0",
      "subnet-network-vpc-isolated-1",
    ]);
    const ingress = rulesOf(plan, INGRESS, "database-sg");
    expect(ingress.map((rule) => rule.inputs)).toEqual([
      expect.objectContaining({
        referencedSecurityGroupId: CLUSTER_SG,
        fromPort: 5432,
        toPort: 5432,
        ipProtocol: "tcp",
      }),
    ]);
    expect(ingress[0]?.inputs.description).toBeTruthy();
    expect(rulesOf(plan, EGRESS, "database-sg")).toEqual([]);
  });

  it("prod: an RDS Proxy requiring TLS and IAM auth fronts the cluster, and the connection points at it", async () => {
    const plan = await planOf("prod");
    const proxy = resourceOf(plan, "aws:rds/proxy:Proxy", "database-proxy");
    expect(proxy.inputs).toMatchObject({
      engineFamily: "POSTGRESQL",
      requireTls: true,
      auths: [
        expect.objectContaining({
          authScheme: "SECRETS",
          iamAuth: "REQUIRED",
          secretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!database-cluster",
        }),
      ],
      vpcSecurityGroupIds: [mockIdOf("database-proxy-sg")],
    });
    const policy = JSON.parse(
      String(resourceOf(plan, "aws:iam/rolePolicy:RolePolicy", "database-proxy-secret").inputs.policy),
    );
    expect(policy.Statement[0]).toMatchObject({
      Action: "secretsmanager:GetSecretValue",
      Resource: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!database-cluster",
    });
    expect(
      resourceOf(plan, "aws:rds/proxyTarget:ProxyTarget", "database-proxy-target").inputs.dbClusterIdentifier,
    ).toBe("ndt-prod");
    expect(plan.outputs.databaseEndpoint).toBe("database-proxy.proxy-mock.eu-west-1.rds.amazonaws.com");
    expect(plan.outputs.databaseReaderEndpoint).toBe(
      "database-proxy-reader.endpoint.proxy-mock.eu-west-1.rds.amazonaws.com",
    );
    // The database admits the cluster and the proxy; the proxy admits the cluster and only talks to the database.
    expect(
      rulesOf(plan, INGRESS, "database-sg")
        .map((rule) => rule.inputs.referencedSecurityGroupId)
        .sort(),
    ).toEqual([mockIdOf("database-proxy-sg"), CLUSTER_SG]);
    expect(rulesOf(plan, INGRESS, "database-proxy-sg").map((rule) => rule.inputs.referencedSecurityGroupId)).toEqual([
      CLUSTER_SG,
    ]);
    expect(rulesOf(plan, EGRESS, "database-proxy-sg").map((rule) => rule.inputs)).toEqual([
      expect.objectContaining({ referencedSecurityGroupId: mockIdOf("database-sg"), fromPort: 5432, toPort: 5432 }),
    ]);
  });

  it("dev: no proxy; the connection points at the cluster's own endpoints", async () => {
    const plan = await planOf("dev");
    expect(resourcesOf(plan, "aws:rds/proxy:Proxy")).toEqual([]);
    expect(plan.outputs.databaseEndpoint).toBe("database-cluster.cluster-mock.eu-west-1.rds.amazonaws.com");
    expect(plan.outputs.databaseReaderEndpoint).toBe("database-cluster.cluster-ro-mock.eu-west-1.rds.amazonaws.com");
  });

  it("validation names every bad argument at once", () => {
    const problems = validateDatabaseArgs({
      vpcId: "vpc",
      subnetIds: [],
      availabilityZoneCount: 2,
      clientSecurityGroupId: "sg",
      kmsKeyArn: "key",
      engineVersion: "sixteen",
      instanceClass: "db.r7g.large",
      instances: 3,
      backupRetentionDays: 40,
    });
    expect(problems.map((problem) => problem.path)).toEqual(["instances", "backupRetentionDays", "engineVersion"]);
    expect(problems[0]?.reason).toContain("at most one instance per AZ");
  });
});
