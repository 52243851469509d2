/**
 * The inline IAM policies of the add-ons' IRSA roles, as pure functions of the ARNs they are scoped to, so tests
 * read them without a plan and A14 holds by construction: no statement pairs a `*` action with a `*` resource, and
 * every write is limited to the platform's own zone, secrets, node groups and log group.
 */

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow";
  Action: string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

const document = (...statements: PolicyStatement[]): PolicyDocument => ({
  Version: "2012-10-17",
  Statement: statements,
});

export const hostedZoneArn = (zoneId: string): string => `arn:aws:route53:::hostedzone/${zoneId}`;

/** cert-manager's DNS-01 solver: TXT records in the platform's zone, nothing else. */
export function certManagerPolicy(zoneId: string): PolicyDocument {
  return document(
    { Sid: "ReadChangeStatus", Effect: "Allow", Action: ["route53:GetChange"], Resource: "arn:aws:route53:::change/*" },
    {
      Sid: "ChallengeRecordsInPlatformZone",
      Effect: "Allow",
      Action: ["route53:ChangeResourceRecordSets"],
      Resource: hostedZoneArn(zoneId),
      Condition: {
        "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"] },
        "ForAllValues:StringLike": { "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["_acme-challenge.*"] },
      },
    },
    {
      Sid: "ListPlatformZone",
      Effect: "Allow",
      Action: ["route53:ListResourceRecordSets"],
      Resource: hostedZoneArn(zoneId),
    },
  );
}

/** external-dns: records in the platform's zone; listing zones has no resource-level scope in Route53. */
export function externalDnsPolicy(zoneId: string): PolicyDocument {
  return document(
    {
      Sid: "RecordsInPlatformZone",
      Effect: "Allow",
      Action: ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResource"],
      Resource: hostedZoneArn(zoneId),
    },
    { Sid: "FindZones", Effect: "Allow", Action: ["route53:ListHostedZones"], Resource: "*" },
  );
}

/**
 * External Secrets: read the platform's secrets only (`ndt/<environment>/*`, the one prefix the services' secrets and
 * the alert receiver's live under, plus the few whose names AWS chooses, such as
 * the RDS-managed master secret), and decrypt them only through Secrets Manager.
 */
export function externalSecretsPolicy(args: {
  region: string;
  accountId: string;
  environment: string;
  secretArns: string[];
  kmsKeyArn: string;
}): PolicyDocument {
  const prefix = `arn:aws:secretsmanager:${args.region}:${args.accountId}:secret:ndt/${args.environment}/*`;
  return document(
    {
      Sid: "ReadPlatformSecrets",
      Effect: "Allow",
      Action: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
      Resource: [prefix, ...args.secretArns],
    },
    {
      Sid: "DecryptThroughSecretsManager",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: args.kmsKeyArn,
      Condition: { StringEquals: { "kms:ViaService": `secretsmanager.${args.region}.amazonaws.com` } },
    },
  );
}

/**
 * cluster-autoscaler: describe calls (no resource-level scope in the Auto Scaling and EC2 APIs) and scaling writes
 * limited to the node groups tagged as this cluster's. DescribeNodegroup gives it the GPU group's labels and taint
 * while that group has no node, which is what lets it scale from 0.
 */
export function clusterAutoscalerPolicy(args: {
  region: string;
  accountId: string;
  clusterName: string;
}): PolicyDocument {
  return document(
    {
      Sid: "Discover",
      Effect: "Allow",
      Action: [
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeLaunchConfigurations",
        "autoscaling:DescribeScalingActivities",
        "autoscaling:DescribeTags",
        "ec2:DescribeImages",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:GetInstanceTypesFromInstanceRequirements",
      ],
      Resource: "*",
    },
    {
      Sid: "ScaleOwnNodeGroups",
      Effect: "Allow",
      Action: ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
      Resource: "*",
      Condition: { StringEquals: { [`aws:ResourceTag/k8s.io/cluster-autoscaler/${args.clusterName}`]: "owned" } },
    },
    {
      Sid: "ReadOwnNodeGroups",
      Effect: "Allow",
      Action: ["eks:DescribeNodegroup"],
      Resource: `arn:aws:eks:${args.region}:${args.accountId}:nodegroup/${args.clusterName}/*`,
    },
  );
}

/** fluent-bit: write streams into the one container log group. */
export function fluentBitPolicy(logGroupArn: string): PolicyDocument {
  return document({
    Sid: "WriteContainerLogs",
    Effect: "Allow",
    Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
    Resource: [logGroupArn, `${logGroupArn}:*`],
  });
}

/** A14 as a predicate over one document: the statements that pair a wildcard action with a `*` resource. */
export function wildcardStatements(policy: PolicyDocument): PolicyStatement[] {
  return policy.Statement.filter((statement) => {
    const resources = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
    return resources.includes("*") && statement.Action.some((action) => action.includes("*"));
  });
}
