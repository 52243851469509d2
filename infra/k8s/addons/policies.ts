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

/**
 * The AWS Load Balancer Controller's policy, as upstream publishes it for the pinned release
 * (kubernetes-sigs/aws-load-balancer-controller `docs/install/iam_policy.json`, v2.13; charts.ts pins chart 1.13.4):
 * the statements and their conditions unchanged, with a `Sid` added to each so a review and A14's findings can name
 * them. Replace it wholesale with the new release's file when the chart is bumped; do not edit statements here.
 *
 * Its `*` resources pair with named actions only (A14), and its writes are mostly conditional on the controller's own
 * `elbv2.k8s.aws/cluster` tag: it can change only load balancers, target groups and security groups it created.
 * Two statements are not tag-scoped upstream, because the controller must change groups it did not create:
 * `ManageSecurityGroupIngress` (the backend rule it adds to the cluster's security group, from the load balancer's
 * group to the pod ports) and `ManageListenersAndRules`.
 */
export function awsLoadBalancerControllerPolicy(): PolicyDocument {
  const ownTagOnRequest = { "aws:RequestTag/elbv2.k8s.aws/cluster": "false" };
  const ownTagOnResource = { "aws:ResourceTag/elbv2.k8s.aws/cluster": "false" };
  const loadBalancersAndTargetGroups = [
    "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
    "arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
    "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
  ];
  return document(
    {
      Sid: "CreateElbServiceLinkedRole",
      Effect: "Allow",
      Action: ["iam:CreateServiceLinkedRole"],
      Resource: "*",
      Condition: { StringEquals: { "iam:AWSServiceName": "elasticloadbalancing.amazonaws.com" } },
    },
    {
      Sid: "Describe",
      Effect: "Allow",
      Action: [
        "ec2:DescribeAccountAttributes",
        "ec2:DescribeAddresses",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeInternetGateways",
        "ec2:DescribeVpcs",
        "ec2:DescribeVpcPeeringConnections",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeInstances",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeTags",
        "ec2:GetCoipPoolUsage",
        "ec2:DescribeCoipPools",
        "ec2:GetSecurityGroupsForVpc",
        "ec2:DescribeIpamPools",
        "ec2:DescribeRouteTables",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeListenerCertificates",
        "elasticloadbalancing:DescribeSSLPolicies",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeTrustStores",
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:DescribeCapacityReservation",
      ],
      Resource: "*",
    },
    {
      Sid: "AlbIntegrations",
      Effect: "Allow",
      Action: [
        "cognito-idp:DescribeUserPoolClient",
        "acm:ListCertificates",
        "acm:DescribeCertificate",
        "iam:ListServerCertificates",
        "iam:GetServerCertificate",
        "waf-regional:GetWebACL",
        "waf-regional:GetWebACLForResource",
        "waf-regional:AssociateWebACL",
        "waf-regional:DisassociateWebACL",
        "wafv2:GetWebACL",
        "wafv2:GetWebACLForResource",
        "wafv2:AssociateWebACL",
        "wafv2:DisassociateWebACL",
        "shield:GetSubscriptionState",
        "shield:DescribeProtection",
        "shield:CreateProtection",
        "shield:DeleteProtection",
      ],
      Resource: "*",
    },
    {
      Sid: "ManageSecurityGroupIngress",
      Effect: "Allow",
      Action: ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
      Resource: "*",
    },
    { Sid: "CreateSecurityGroup", Effect: "Allow", Action: ["ec2:CreateSecurityGroup"], Resource: "*" },
    {
      Sid: "TagSecurityGroupOnCreate",
      Effect: "Allow",
      Action: ["ec2:CreateTags"],
      Resource: "arn:aws:ec2:*:*:security-group/*",
      Condition: {
        StringEquals: { "ec2:CreateAction": "CreateSecurityGroup" },
        Null: ownTagOnRequest,
      },
    },
    {
      Sid: "TagOwnSecurityGroups",
      Effect: "Allow",
      Action: ["ec2:CreateTags", "ec2:DeleteTags"],
      Resource: "arn:aws:ec2:*:*:security-group/*",
      Condition: {
        Null: { "aws:RequestTag/elbv2.k8s.aws/cluster": "true", "aws:ResourceTag/elbv2.k8s.aws/cluster": "false" },
      },
    },
    {
      Sid: "ManageOwnSecurityGroups",
      Effect: "Allow",
      Action: ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"],
      Resource: "*",
      Condition: { Null: ownTagOnResource },
    },
    {
      Sid: "CreateTaggedLoadBalancers",
      Effect: "Allow",
      Action: ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
      Resource: "*",
      Condition: { Null: ownTagOnRequest },
    },
    {
      Sid: "ManageListenersAndRules",
      Effect: "Allow",
      Action: [
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:DeleteListener",
        "elasticloadbalancing:CreateRule",
        "elasticloadbalancing:DeleteRule",
      ],
      Resource: "*",
    },
    {
      Sid: "TagOwnLoadBalancers",
      Effect: "Allow",
      Action: ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
      Resource: loadBalancersAndTargetGroups,
      Condition: {
        Null: { "aws:RequestTag/elbv2.k8s.aws/cluster": "true", "aws:ResourceTag/elbv2.k8s.aws/cluster": "false" },
      },
    },
    {
      Sid: "TagListenersAndRules",
      Effect: "Allow",
      Action: ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
      Resource: [
        "arn:aws:elasticloadbalancing:*:*:listener/net/*/*/*",
        "arn:aws:elasticloadbalancing:*:*:listener/app/*/*/*",
        "arn:aws:elasticloadbalancing:*:*:listener-rule/net/*/*/*",
        "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*/*/*",
      ],
    },
    {
      Sid: "ModifyOwnLoadBalancers",
      Effect: "Allow",
      Action: [
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:SetIpAddressType",
        "elasticloadbalancing:SetSecurityGroups",
        "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyListenerAttributes",
        "elasticloadbalancing:ModifyCapacityReservation",
        "elasticloadbalancing:ModifyIpPools",
      ],
      Resource: "*",
      Condition: { Null: ownTagOnResource },
    },
    {
      Sid: "TagLoadBalancersOnCreate",
      Effect: "Allow",
      Action: ["elasticloadbalancing:AddTags"],
      Resource: loadBalancersAndTargetGroups,
      Condition: {
        StringEquals: { "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"] },
        Null: ownTagOnRequest,
      },
    },
    {
      Sid: "RegisterTargets",
      Effect: "Allow",
      Action: ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
      Resource: "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
    },
    {
      Sid: "ModifyListenersAndRules",
      Effect: "Allow",
      Action: [
        "elasticloadbalancing:SetWebAcl",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:AddListenerCertificates",
        "elasticloadbalancing:RemoveListenerCertificates",
        "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:SetRulePriorities",
      ],
      Resource: "*",
    },
  );
}

/** A14 as a predicate over one document: the statements that pair a wildcard action with a `*` resource. */
export function wildcardStatements(policy: PolicyDocument): PolicyStatement[] {
  return policy.Statement.filter((statement) => {
    const resources = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
    return resources.includes("*") && statement.Action.some((action) => action.includes("*"));
  });
}
