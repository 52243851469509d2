import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { CacheConnection } from "./connections.js";
import { createDataTierSecurityGroup, storeSecret } from "./data-tier.js";
import { applyTransform, type Transform } from "./transform.js";

/** Redis and Valkey's port. */
export const CACHE_PORT = 6379;

export interface CacheArgs {
  vpcId: pulumi.Input<string>;
  /** The network's isolated subnets; the cache subnet group spans them. */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** The only security group allowed to connect: the EKS cluster's (A13). */
  clientSecurityGroupId: pulumi.Input<string>;
  /** Customer-managed key for data at rest, snapshots and the AUTH token's secret (A9, A15). */
  kmsKeyArn: pulumi.Input<string>;
  /**
   * Valkey is the open-source, cheaper-per-node successor; redis stays possible for parity with older setups.
   * @default "valkey"
   */
  engine?: "redis" | "valkey";
  /** Engine version, major.minor, e.g. "8.0". */
  engineVersion: string;
  /** e.g. "cache.r7g.large" in prod, "cache.t4g.small" in dev. */
  nodeType: string;
  /**
   * Primary plus replicas. Two or more allow automatic failover.
   * @default 1 (HA is a stack choice: prod sets 3)
   */
  nodes?: number;
  /**
   * Replicas in other AZs than the primary, promoted automatically when its AZ fails. Needs `nodes >= 2`.
   * @default false
   */
  multiAz?: boolean;
  /**
   * Days of daily snapshots kept.
   * @default 7
   */
  snapshotRetentionDays?: number;
  /** Key for the slow-log group; without it CloudWatch's own encryption applies. */
  logsKmsKeyArn?: pulumi.Input<string>;
  /** @default 30 */
  logRetentionDays?: number;
  transform?: {
    replicationGroup?: Transform<aws.elasticache.ReplicationGroupArgs>;
    subnetGroup?: Transform<aws.elasticache.SubnetGroupArgs>;
    securityGroup?: Transform<aws.ec2.SecurityGroupArgs>;
    authSecret?: Transform<aws.secretsmanager.SecretArgs>;
  };
}

/** Problems with CacheArgs, each naming its property (STYLE.md rule 5); empty when the args are usable. */
export function validateCacheArgs(args: CacheArgs): { path: string; reason: string }[] {
  const problems: { path: string; reason: string }[] = [];
  const nodes = args.nodes ?? 1;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 6)
    problems.push({ path: "nodes", reason: `must be an integer from 1 to 6 (got ${nodes})` });
  if ((args.multiAz ?? false) && nodes < 2)
    problems.push({ path: "multiAz", reason: "needs at least 2 nodes (a replica to fail over to)" });
  const snapshots = args.snapshotRetentionDays ?? 7;
  if (!Number.isInteger(snapshots) || snapshots < 0 || snapshots > 35)
    problems.push({ path: "snapshotRetentionDays", reason: `must be an integer from 0 to 35 (got ${snapshots})` });
  return problems;
}

/**
 * An ElastiCache replication group (Valkey or Redis OSS, cluster mode off): TLS required in transit, encrypted at rest
 * with the data CMK, an AUTH token that Pulumi generates and keeps only as a secret (state, Secrets Manager under the
 * CMK), Multi-AZ with automatic failover when there are replicas, daily snapshots, the slow log in CloudWatch. Only
 * the cluster's security group reaches port 6379.
 *
 * Children and their transforms: `replicationGroup`, `subnetGroup`, `securityGroup`, `authSecret`.
 *
 * Cost: dev (1 cache.t4g.small) about $25/month. prod (3 cache.r7g.large across AZs) about $490/month, plus
 * snapshots beyond one copy of the data and the secret ($0.40/month).
 */
export class Cache extends pulumi.ComponentResource {
  readonly primaryEndpoint: pulumi.Output<string>;
  readonly readerEndpoint: pulumi.Output<string>;
  readonly securityGroupId: pulumi.Output<string>;
  /** Secrets Manager secret holding `{"token": "..."}`. */
  readonly authSecretArn: pulumi.Output<string>;
  /** What the Kubernetes services get: hosts, port, TLS, the AUTH token's secret ARN. */
  readonly connection: CacheConnection;

  constructor(name: string, args: CacheArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Cache", name, {}, opts);
    const settings = normalizeArgs();
    const parent = this;

    const authToken = createAuthToken();
    const authSecret = storeAuthToken(authToken);
    const securityGroup = createSecurityGroup();
    const subnetGroup = createSubnetGroup();
    const slowLog = createSlowLogGroup();
    const group = createReplicationGroup();

    this.primaryEndpoint = group.primaryEndpointAddress;
    this.readerEndpoint = group.readerEndpointAddress;
    this.securityGroupId = securityGroup.id;
    this.authSecretArn = authSecret.arn;
    this.connection = {
      host: this.primaryEndpoint,
      readerHost: this.readerEndpoint,
      port: CACHE_PORT,
      tls: true,
      authSecretArn: this.authSecretArn,
    };
    this.registerOutputs({ primaryEndpoint: this.primaryEndpoint, readerEndpoint: this.readerEndpoint });

    function normalizeArgs() {
      const problems = validateCacheArgs(args);
      if (problems.length > 0) {
        throw new Error(
          `Cache ${name} has invalid args:\n${problems.map((p) => `  - ${p.path}: ${p.reason}`).join("\n")}`,
        );
      }
      return {
        engine: args.engine ?? "valkey",
        nodes: args.nodes ?? 1,
        multiAz: args.multiAz ?? false,
        snapshotRetentionDays: args.snapshotRetentionDays ?? 7,
        logRetentionDays: args.logRetentionDays ?? 30,
      };
    }

    function createAuthToken(): random.RandomPassword {
      // AUTH tokens take 16–128 printable characters but not @, " or /: letters and digits avoid every escape.
      return new random.RandomPassword(`${name}-auth-token`, { length: 64, special: false }, { parent });
    }

    function storeAuthToken(token: random.RandomPassword): aws.secretsmanager.Secret {
      return storeSecret(parent, `${name}-auth`, {
        description: `ElastiCache AUTH token for ${name} (${pulumi.getStack()}), synced into Kubernetes`,
        kmsKeyArn: args.kmsKeyArn,
        value: { token: token.result },
        transform: args.transform?.authSecret,
      });
    }

    function createSecurityGroup(): aws.ec2.SecurityGroup {
      return createDataTierSecurityGroup(parent, name, {
        vpcId: args.vpcId,
        clientSecurityGroupId: args.clientSecurityGroupId,
        description: `ElastiCache ${settings.engine}: 6379 from the EKS cluster only`,
        nameTag: `ndt-${pulumi.getStack()}-cache`,
        ports: [
          {
            port: CACHE_PORT,
            description: `${settings.engine} (TLS) from EKS pods and nodes (cluster security group)`,
          },
        ],
        transform: args.transform?.securityGroup,
      });
    }

    function createSubnetGroup(): aws.elasticache.SubnetGroup {
      return new aws.elasticache.SubnetGroup(
        `${name}-subnets`,
        applyTransform<aws.elasticache.SubnetGroupArgs>(
          { subnetIds: args.subnetIds, description: "ElastiCache on the isolated (data) subnets" },
          args.transform?.subnetGroup,
        ),
        { parent },
      );
    }

    function createSlowLogGroup(): aws.cloudwatch.LogGroup {
      return new aws.cloudwatch.LogGroup(
        `${name}-slow-log`,
        {
          retentionInDays: settings.logRetentionDays,
          ...(args.logsKmsKeyArn ? { kmsKeyId: args.logsKmsKeyArn } : {}),
        },
        { parent },
      );
    }

    function createReplicationGroup(): aws.elasticache.ReplicationGroup {
      const failover = settings.nodes >= 2;
      return new aws.elasticache.ReplicationGroup(
        `${name}-group`,
        applyTransform<aws.elasticache.ReplicationGroupArgs>(
          {
            description: `ndt ${pulumi.getStack()}: sessions, throttling counters, cache`,
            engine: settings.engine,
            engineVersion: args.engineVersion,
            nodeType: args.nodeType,
            port: CACHE_PORT,
            numCacheClusters: settings.nodes,
            automaticFailoverEnabled: failover,
            multiAzEnabled: settings.multiAz,
            subnetGroupName: subnetGroup.id,
            securityGroupIds: [securityGroup.id],
            atRestEncryptionEnabled: true,
            kmsKeyId: args.kmsKeyArn,
            // "required": no plaintext client is ever accepted ("preferred" would accept both during a migration).
            transitEncryptionEnabled: true,
            transitEncryptionMode: "required",
            authToken: pulumi.secret(authToken.result),
            autoMinorVersionUpgrade: true,
            snapshotRetentionLimit: settings.snapshotRetentionDays,
            snapshotWindow: "02:00-03:00",
            maintenanceWindow: "sun:03:30-sun:04:30",
            applyImmediately: false,
            logDeliveryConfigurations: [
              { destination: slowLog.id, destinationType: "cloudwatch-logs", logFormat: "json", logType: "slow-log" },
            ],
          },
          args.transform?.replicationGroup,
        ),
        { parent },
      );
    }
  }
}
