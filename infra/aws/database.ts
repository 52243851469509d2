import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { DatabaseConnection } from "./connections.js";
import { createDataTierSecurityGroup } from "./data-tier.js";
import { applyTransform, type Transform } from "./transform.js";
import { logicalNameOf } from "./logical-name.js";

/** PostgreSQL's port; clients, proxy and security groups all use it. */
export const POSTGRES_PORT = 5432;

/**
 * Cluster parameters every environment gets: TLS only (A7), and enough logging to see slow queries, lock waits and
 * schema changes without logging every statement's data.
 */
export const CLUSTER_PARAMETERS: Readonly<Record<string, string>> = {
  "rds.force_ssl": "1",
  ssl_min_protocol_version: "TLSv1.2",
  log_min_duration_statement: "1000",
  log_lock_waits: "1",
  log_statement: "ddl",
  log_connections: "1",
  log_disconnections: "1",
};

export interface DatabaseArgs {
  vpcId: pulumi.Input<string>;
  /** The network's isolated subnets (no route to the internet); the DB subnet group spans them. */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** How many AZs those subnets cover: instances go one per AZ, so there can be no more instances than AZs. */
  availabilityZoneCount: number;
  /** The only security group allowed to connect: the EKS cluster's, which every pod carries (A13). */
  clientSecurityGroupId: pulumi.Input<string>;
  /** Customer-managed key for storage, the master secret and Performance Insights (A7, A8). */
  kmsKeyArn: pulumi.Input<string>;
  /** Aurora PostgreSQL version, major.minor, e.g. "16.6"; the parameter group family follows the major. */
  engineVersion: string;
  /** e.g. "db.r7g.large" in prod, "db.t4g.medium" in dev. */
  instanceClass: string;
  /**
   * Writer plus readers, each in its own AZ. A second instance is what makes a failover take seconds, not a rebuild.
   * @default 1 (HA is a stack choice: prod sets 3)
   */
  instances?: number;
  /**
   * Days of point-in-time recovery.
   * @default 7 (A7's prod minimum)
   */
  backupRetentionDays?: number;
  /**
   * Refuse deletion of the cluster.
   * @default true (turning it off is a deliberate dev choice)
   */
  deletionProtection?: boolean;
  /**
   * Skip the snapshot taken when the cluster is deleted; only for throwaway data.
   * @default false
   */
  skipFinalSnapshot?: boolean;
  /**
   * Performance Insights on every instance, encrypted with the CMK (7 days retention is free).
   * @default true
   */
  performanceInsights?: boolean;
  /**
   * An RDS Proxy in front (TLS and IAM auth required): pools connections so pod scale-outs and failovers do not
   * exhaust or drop them; the connection's hosts then point at the proxy.
   * @default false (it costs per vCPU of the cluster)
   */
  rdsProxy?: boolean;
  /** @default "ndt" */
  databaseName?: string;
  /** @default "ndt_admin" */
  masterUsername?: string;
  /** Key for the PostgreSQL log group; without it CloudWatch's own encryption applies. */
  logsKmsKeyArn?: pulumi.Input<string>;
  /** @default 30 */
  logRetentionDays?: number;
  transform?: {
    cluster?: Transform<aws.rds.ClusterArgs>;
    instance?: Transform<aws.rds.ClusterInstanceArgs>;
    parameterGroup?: Transform<aws.rds.ClusterParameterGroupArgs>;
    subnetGroup?: Transform<aws.rds.SubnetGroupArgs>;
    securityGroup?: Transform<aws.ec2.SecurityGroupArgs>;
    proxy?: Transform<aws.rds.ProxyArgs>;
  };
}

/** Problems with DatabaseArgs, each naming its property (STYLE.md rule 5); empty when the args are usable. */
export function validateDatabaseArgs(args: DatabaseArgs): { path: string; reason: string }[] {
  const problems: { path: string; reason: string }[] = [];
  const instances = args.instances ?? 1;
  if (!Number.isInteger(instances) || instances < 1 || instances > 15)
    problems.push({ path: "instances", reason: `must be an integer from 1 to 15 (got ${instances})` });
  if (instances > args.availabilityZoneCount)
    problems.push({
      path: "instances",
      reason: `${instances} instances over ${args.availabilityZoneCount} AZs: at most one instance per AZ`,
    });
  const backups = args.backupRetentionDays ?? 7;
  if (!Number.isInteger(backups) || backups < 1 || backups > 35)
    problems.push({ path: "backupRetentionDays", reason: `must be an integer from 1 to 35 (got ${backups})` });
  if (!/^\d+\.\d+$/.test(args.engineVersion))
    problems.push({ path: "engineVersion", reason: `must be major.minor such as 16.6 (got ${args.engineVersion})` });
  return problems;
}

/**
 * Aurora PostgreSQL: a writer and readers spread one per AZ on the isolated subnets, encrypted with the data CMK,
 * TLS forced (`rds.force_ssl = 1`), IAM database auth, a master password that RDS generates and rotates in Secrets
 * Manager (never in config or state), PostgreSQL logs exported to CloudWatch, Performance Insights, backups, deletion
 * protection with a final snapshot. Only the cluster's security group reaches port 5432. With `rdsProxy`, an RDS
 * Proxy (TLS and IAM auth required) pools connections and the connection's hosts point at it.
 *
 * Children and their transforms: `cluster`, `instance` (each), `parameterGroup`, `subnetGroup`, `securityGroup`
 * (the database's), `proxy`.
 *
 * Cost: dev (1 db.t4g.medium, 1 day of backups, no proxy) about $60/month plus storage ($0.10/GB-month) and I/O.
 * prod (3 db.r7g.large across 3 AZs, RDS Proxy, 14 days of backups) about $780/month for instances and ~$65 for the
 * proxy, plus storage, I/O and backups beyond the cluster's size.
 */
export class Database extends pulumi.ComponentResource {
  readonly clusterIdentifier: string;
  readonly endpoint: pulumi.Output<string>;
  readonly readerEndpoint: pulumi.Output<string>;
  readonly securityGroupId: pulumi.Output<string>;
  /** The RDS-managed master secret (`{username, password}`), encrypted with the CMK. */
  readonly masterSecretArn: pulumi.Output<string>;
  /** What the Kubernetes services get: hosts, port, database, user, secret ARN; TLS verify-full. */
  readonly connection: DatabaseConnection;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Database", name, {}, opts);
    const settings = normalizeArgs();
    this.clusterIdentifier = `ndt-${pulumi.getStack()}`;
    const parent = this;

    const securityGroup = createSecurityGroup();
    const subnetGroup = createSubnetGroup();
    const parameterGroup = createParameterGroup();
    const logGroup = createLogGroup();
    const cluster = createCluster();
    const instances = createInstances();
    const proxy = settings.rdsProxy ? createProxy() : undefined;

    this.securityGroupId = securityGroup.id;
    this.endpoint = cluster.endpoint;
    this.readerEndpoint = cluster.readerEndpoint;
    this.masterSecretArn = cluster.masterUserSecrets.apply((secrets) => {
      const arn = secrets[0]?.secretArn;
      if (!arn) throw new Error(`${name}: the cluster reports no managed master secret`);
      return arn;
    });
    this.connection = {
      host: proxy?.writer ?? cluster.endpoint,
      readerHost: proxy?.reader ?? cluster.readerEndpoint,
      port: POSTGRES_PORT,
      database: settings.databaseName,
      username: settings.masterUsername,
      secretArn: this.masterSecretArn,
      sslMode: "verify-full",
      ...(proxy ? { iamAuth: proxy.iamAuth } : {}),
    };
    this.registerOutputs({
      endpoint: this.endpoint,
      readerEndpoint: this.readerEndpoint,
      host: this.connection.host,
      instances: instances.length,
    });

    function normalizeArgs() {
      const problems = validateDatabaseArgs(args);
      if (problems.length > 0) {
        throw new Error(
          `Database ${name} has invalid args:\n${problems.map((p) => `  - ${p.path}: ${p.reason}`).join("\n")}`,
        );
      }
      return {
        instances: args.instances ?? 1,
        backupRetentionDays: args.backupRetentionDays ?? 7,
        deletionProtection: args.deletionProtection ?? true,
        skipFinalSnapshot: args.skipFinalSnapshot ?? false,
        performanceInsights: args.performanceInsights ?? true,
        rdsProxy: args.rdsProxy ?? false,
        databaseName: args.databaseName ?? "ndt",
        masterUsername: args.masterUsername ?? "ndt_admin",
        logRetentionDays: args.logRetentionDays ?? 30,
        family: `aurora-postgresql${args.engineVersion.split(".")[0]}`,
      };
    }

    function createSecurityGroup(): aws.ec2.SecurityGroup {
      return createDataTierSecurityGroup(parent, name, {
        vpcId: args.vpcId,
        clientSecurityGroupId: args.clientSecurityGroupId,
        description: "Aurora PostgreSQL: 5432 from the EKS cluster (and its RDS Proxy) only",
        nameTag: `${parent.clusterIdentifier}-database`,
        ports: [{ port: POSTGRES_PORT, description: "PostgreSQL from EKS pods and nodes (cluster security group)" }],
        transform: args.transform?.securityGroup,
      });
    }

    function createSubnetGroup(): aws.rds.SubnetGroup {
      return new aws.rds.SubnetGroup(
        `${name}-subnets`,
        applyTransform<aws.rds.SubnetGroupArgs>(
          { subnetIds: args.subnetIds, description: "Aurora on the isolated (data) subnets, one per AZ" },
          args.transform?.subnetGroup,
        ),
        { parent },
      );
    }

    function createParameterGroup(): aws.rds.ClusterParameterGroup {
      return new aws.rds.ClusterParameterGroup(
        `${name}-params`,
        applyTransform<aws.rds.ClusterParameterGroupArgs>(
          {
            family: settings.family,
            description: "TLS only (rds.force_ssl), slow-query, lock-wait and DDL logging",
            // pending-reboot is accepted for static and dynamic parameters alike; a new cluster boots with them.
            parameters: Object.entries(CLUSTER_PARAMETERS).map(([parameter, value]) => ({
              name: parameter,
              value,
              applyMethod: "pending-reboot",
            })),
          },
          args.transform?.parameterGroup,
        ),
        { parent },
      );
    }

    function createLogGroup(): aws.cloudwatch.LogGroup {
      // RDS writes to this fixed name; creating it first sets retention and encryption instead of "never expire".
      return new aws.cloudwatch.LogGroup(
        `${name}-postgresql-logs`,
        {
          name: `/aws/rds/cluster/${parent.clusterIdentifier}/postgresql`,
          retentionInDays: settings.logRetentionDays,
          ...(args.logsKmsKeyArn ? { kmsKeyId: args.logsKmsKeyArn } : {}),
        },
        { parent },
      );
    }

    function createCluster(): aws.rds.Cluster {
      return new aws.rds.Cluster(
        `${name}-cluster`,
        applyTransform<aws.rds.ClusterArgs>(
          {
            clusterIdentifier: parent.clusterIdentifier,
            engine: "aurora-postgresql",
            engineVersion: args.engineVersion,
            databaseName: settings.databaseName,
            masterUsername: settings.masterUsername,
            // RDS generates the password and keeps it in Secrets Manager, encrypted with our key; it never reaches
            // config, state or the plan.
            manageMasterUserPassword: true,
            masterUserSecretKmsKeyId: args.kmsKeyArn,
            iamDatabaseAuthenticationEnabled: true,
            storageEncrypted: true,
            kmsKeyId: args.kmsKeyArn,
            dbSubnetGroupName: subnetGroup.id,
            dbClusterParameterGroupName: parameterGroup.id,
            vpcSecurityGroupIds: [securityGroup.id],
            port: POSTGRES_PORT,
            backupRetentionPeriod: settings.backupRetentionDays,
            preferredBackupWindow: "02:00-03:00",
            preferredMaintenanceWindow: "sun:03:30-sun:04:30",
            copyTagsToSnapshot: true,
            deletionProtection: settings.deletionProtection,
            skipFinalSnapshot: settings.skipFinalSnapshot,
            ...(settings.skipFinalSnapshot ? {} : { finalSnapshotIdentifier: `${parent.clusterIdentifier}-final` }),
            enabledCloudwatchLogsExports: ["postgresql"],
            allowMajorVersionUpgrade: false,
            applyImmediately: false,
          },
          args.transform?.cluster,
        ),
        { parent, dependsOn: [logGroup] },
      );
    }

    function createInstances(): aws.rds.ClusterInstance[] {
      const zones = aws.getAvailabilityZonesOutput({ state: "available" }, { parent }).names;
      return Array.from({ length: settings.instances }, (_, index) => {
        const zone = zones.apply((names) => {
          const zoneName = names[index];
          if (!zoneName) throw new Error(`${name}: no availability zone for instance ${index}`);
          return zoneName;
        });
        return new aws.rds.ClusterInstance(
          `${name}-instance-${index}`,
          applyTransform<aws.rds.ClusterInstanceArgs>(
            {
              clusterIdentifier: cluster.id,
              engine: "aurora-postgresql",
              engineVersion: args.engineVersion,
              instanceClass: args.instanceClass,
              // One instance per AZ: losing a zone leaves a reader to promote (A8).
              availabilityZone: zone,
              dbSubnetGroupName: subnetGroup.id,
              publiclyAccessible: false,
              autoMinorVersionUpgrade: true,
              copyTagsToSnapshot: true,
              // The first instance is the preferred writer; readers follow in order.
              promotionTier: index === 0 ? 0 : 1,
              performanceInsightsEnabled: settings.performanceInsights,
              ...(settings.performanceInsights
                ? { performanceInsightsKmsKeyId: args.kmsKeyArn, performanceInsightsRetentionPeriod: 7 }
                : {}),
              preferredMaintenanceWindow: "sun:03:30-sun:04:30",
            },
            args.transform?.instance,
          ),
          { parent },
        );
      });
    }

    function createProxy(): {
      writer: pulumi.Output<string>;
      reader: pulumi.Output<string>;
      iamAuth: NonNullable<DatabaseConnection["iamAuth"]>;
    } {
      const proxyName = parent.clusterIdentifier;
      const region = aws.getRegionOutput({}, { parent }).region;
      const proxySecurityGroup = new aws.ec2.SecurityGroup(
        `${name}-proxy-sg`,
        {
          vpcId: args.vpcId,
          description: "RDS Proxy: 5432 from the EKS cluster in, 5432 to Aurora out",
          tags: { Name: `${proxyName}-database-proxy`, tier: "data" },
        },
        { parent },
      );
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-proxy-from-cluster`,
        {
          securityGroupId: proxySecurityGroup.id,
          referencedSecurityGroupId: args.clientSecurityGroupId,
          ipProtocol: "tcp",
          fromPort: POSTGRES_PORT,
          toPort: POSTGRES_PORT,
          description: "PostgreSQL from EKS pods and nodes (cluster security group) to the proxy",
        },
        { parent },
      );
      new aws.vpc.SecurityGroupEgressRule(
        `${name}-proxy-to-database`,
        {
          securityGroupId: proxySecurityGroup.id,
          referencedSecurityGroupId: securityGroup.id,
          ipProtocol: "tcp",
          fromPort: POSTGRES_PORT,
          toPort: POSTGRES_PORT,
          description: "PostgreSQL from the proxy to the Aurora instances",
        },
        { parent },
      );
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-from-proxy`,
        {
          securityGroupId: securityGroup.id,
          referencedSecurityGroupId: proxySecurityGroup.id,
          ipProtocol: "tcp",
          fromPort: POSTGRES_PORT,
          toPort: POSTGRES_PORT,
          description: "PostgreSQL from the RDS Proxy",
        },
        { parent },
      );

      const role = new aws.iam.Role(
        `${name}-proxy-role`,
        {
          description: "RDS Proxy reads the cluster's managed master secret",
          assumeRolePolicy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Principal: { Service: "rds.amazonaws.com" }, Action: "sts:AssumeRole" }],
          }),
        },
        { parent },
      );
      const secretArn = cluster.masterUserSecrets.apply((secrets) => secrets[0]?.secretArn ?? "");
      const rolePolicy = new aws.iam.RolePolicy(
        `${name}-proxy-secret`,
        {
          role: role.id,
          policy: pulumi.jsonStringify({
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "ReadMasterSecret",
                Effect: "Allow",
                Action: "secretsmanager:GetSecretValue",
                Resource: secretArn,
              },
              {
                Sid: "DecryptMasterSecret",
                Effect: "Allow",
                Action: "kms:Decrypt",
                Resource: args.kmsKeyArn,
                Condition: {
                  StringEquals: { "kms:ViaService": pulumi.interpolate`secretsmanager.${region}.amazonaws.com` },
                },
              },
            ],
          }),
        },
        { parent },
      );

      const proxy = new aws.rds.Proxy(
        `${name}-proxy`,
        applyTransform<aws.rds.ProxyArgs>(
          {
            name: proxyName,
            engineFamily: "POSTGRESQL",
            requireTls: true,
            roleArn: role.arn,
            vpcSubnetIds: args.subnetIds,
            vpcSecurityGroupIds: [proxySecurityGroup.id],
            idleClientTimeout: 1800,
            auths: [
              {
                authScheme: "SECRETS",
                secretArn,
                iamAuth: "REQUIRED",
                clientPasswordAuthType: "POSTGRES_SCRAM_SHA_256",
                description: "Clients authenticate with IAM; the proxy logs in with the managed master secret",
              },
            ],
          },
          args.transform?.proxy,
        ),
        { parent, dependsOn: [rolePolicy] },
      );
      const targetGroup = new aws.rds.ProxyDefaultTargetGroup(
        `${name}-proxy-targets`,
        {
          dbProxyName: proxy.name,
          connectionPoolConfig: {
            maxConnectionsPercent: 90,
            maxIdleConnectionsPercent: 50,
            connectionBorrowTimeout: 120,
          },
        },
        { parent },
      );
      new aws.rds.ProxyTarget(
        `${name}-proxy-target`,
        { dbProxyName: proxy.name, targetGroupName: targetGroup.name, dbClusterIdentifier: cluster.clusterIdentifier },
        { parent, dependsOn: instances },
      );
      const iamAuth = { region, grantConnect: (role: aws.iam.Role) => grantConnect(proxy, role) };
      // one instance: reads go through the proxy's writer endpoint too, so every client authenticates the same way
      if (settings.instances < 2) return { writer: proxy.endpoint, reader: proxy.endpoint, iamAuth };
      const readerEndpoint = new aws.rds.ProxyEndpoint(
        `${name}-proxy-reader`,
        {
          dbProxyName: proxy.name,
          dbProxyEndpointName: `${proxyName}-ro`,
          targetRole: "READ_ONLY",
          vpcSubnetIds: args.subnetIds,
          vpcSecurityGroupIds: [proxySecurityGroup.id],
        },
        { parent },
      );
      return { writer: proxy.endpoint, reader: readerEndpoint.endpoint, iamAuth };
    }

    /**
     * `rds-db:connect` as the database user through the proxy, and nothing else: the resource is the proxy's id
     * (`prx-…`, the last field of its ARN) and the user (A14).
     */
    function grantConnect(proxy: aws.rds.Proxy, role: aws.iam.Role): aws.iam.RolePolicy {
      const user = settings.masterUsername;
      return new aws.iam.RolePolicy(
        `${name}-connect-${logicalNameOf(role)}`,
        {
          role: role.id,
          policy: proxy.arn.apply((arn) => {
            const [, partition, , proxyRegion, account, , proxyId] = arn.split(":");
            return JSON.stringify({
              Version: "2012-10-17",
              Statement: [
                {
                  Sid: "ConnectThroughProxy",
                  Effect: "Allow",
                  Action: "rds-db:connect",
                  Resource: `arn:${partition}:rds-db:${proxyRegion}:${account}:dbuser:${proxyId}/${user}`,
                },
              ],
            });
          }),
        },
        { parent },
      );
    }
  }
}
