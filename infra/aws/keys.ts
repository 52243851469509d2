import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/** What each customer-managed key encrypts; one key per blast radius. */
export type KeyPurpose = "cluster" | "data" | "storage" | "logs";

export interface KeysArgs {
  /**
   * Days a deleted key waits before it is gone; the maximum gives the longest window to undo a mistake.
   * @default 30
   */
  deletionWindowInDays?: number;
}

/**
 * The platform's customer-managed KMS keys, rotating yearly (A15). `cluster` encrypts EKS secrets, `data` Aurora,
 * ElastiCache and their Secrets Manager entries, `storage` the S3 buckets (CloudFront may decrypt through OAC),
 * `logs` CloudWatch log groups.
 *
 * Cost: $1 per key per month plus requests: about $4/month in dev and prod alike.
 */
export class Keys extends pulumi.ComponentResource {
  readonly keys: Record<KeyPurpose, aws.kms.Key>;

  constructor(name: string, args: KeysArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Keys", name, {}, opts);
    const deletionWindowInDays = args.deletionWindowInDays ?? 30;
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const region = aws.getRegionOutput({}, { parent: this }).region;

    const autoScalingRole = pulumi.interpolate`arn:aws:iam::${account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    const rootStatement = {
      Sid: "AccountAdministers",
      Effect: "Allow",
      Principal: { AWS: pulumi.interpolate`arn:aws:iam::${account}:root` },
      Action: "kms:*",
      Resource: "*",
    };
    const servicePrincipalStatements: Record<KeyPurpose, pulumi.Input<object>[]> = {
      // Node volumes are encrypted with the cluster key: the Auto Scaling service-linked role launches them.
      cluster: [
        {
          Sid: "AutoScalingUsesKeyForNodeVolumes",
          Effect: "Allow",
          Principal: { AWS: autoScalingRole },
          Action: ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
          Resource: "*",
        },
        {
          Sid: "AutoScalingGrantsForNodeVolumes",
          Effect: "Allow",
          Principal: { AWS: autoScalingRole },
          Action: "kms:CreateGrant",
          Resource: "*",
          Condition: { Bool: { "kms:GrantIsForAWSResource": "true" } },
        },
      ],
      data: [],
      storage: [
        {
          Sid: "CloudFrontReadsThroughOac",
          Effect: "Allow",
          Principal: { Service: "cloudfront.amazonaws.com" },
          Action: ["kms:Decrypt"],
          Resource: "*",
          Condition: { StringEquals: { "aws:SourceAccount": account } },
        },
      ],
      logs: [
        {
          Sid: "CloudWatchLogsEncrypts",
          Effect: "Allow",
          Principal: { Service: pulumi.interpolate`logs.${region}.amazonaws.com` },
          Action: ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
          Resource: "*",
          Condition: {
            ArnLike: { "kms:EncryptionContext:aws:logs:arn": pulumi.interpolate`arn:aws:logs:${region}:${account}:*` },
          },
        },
      ],
    };
    const descriptions: Record<KeyPurpose, string> = {
      cluster: "EKS Kubernetes secrets envelope encryption",
      data: "Aurora, ElastiCache, Secrets Manager and Performance Insights",
      storage: "S3 buckets (uploads, reports, models, logs)",
      logs: "CloudWatch log groups",
    };

    const createKey = (purpose: KeyPurpose): aws.kms.Key => {
      const key = new aws.kms.Key(
        `${name}-${purpose}`,
        {
          description: `ndt-platform ${pulumi.getStack()}: ${descriptions[purpose]}`,
          enableKeyRotation: true,
          rotationPeriodInDays: 365,
          deletionWindowInDays,
          policy: pulumi.jsonStringify({
            Version: "2012-10-17",
            Statement: [rootStatement, ...servicePrincipalStatements[purpose]],
          }),
        },
        { parent: this },
      );
      new aws.kms.Alias(
        `${name}-${purpose}`,
        { name: `alias/ndt-${pulumi.getStack()}-${purpose}`, targetKeyId: key.keyId },
        { parent: this },
      );
      return key;
    };

    this.keys = {
      cluster: createKey("cluster"),
      data: createKey("data"),
      storage: createKey("storage"),
      logs: createKey("logs"),
    };
    this.registerOutputs({});
  }
}
