import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";

/**
 * Deterministic stand-ins for what AWS and the remote components (@pulumi/eks, @pulumi/awsx) would return, so the
 * real program runs offline. Inputs are echoed back as state; each type adds the outputs the program reads.
 * Values are derived from the resource name only, never from time or randomness: the plan must be byte-stable.
 */

export const MOCK_ACCOUNT_ID = "123456789012";

type MockState = Record<string, unknown>;
type StateBuilder = (name: string, inputs: Record<string, unknown>, region: string) => MockState;

const arnFor = (service: string, region: string, resource: string): string =>
  `arn:aws:${service}:${region}:${MOCK_ACCOUNT_ID}:${resource}`;

const subnetIds = (name: string, tier: string, count: number): string[] =>
  Array.from({ length: count }, (_, i) => `subnet-${name}-${tier}-${i}`);

/** Outputs per resource type, beyond the echoed inputs. */
const outputsByType: Record<string, StateBuilder> = {
  "awsx:ec2:Vpc": (name, inputs) => {
    const azCount = Number(inputs.numberOfAvailabilityZones ?? 2);
    return {
      vpcId: `vpc-${name}`,
      privateSubnetIds: subnetIds(name, "private", azCount),
      publicSubnetIds: subnetIds(name, "public", azCount),
      isolatedSubnetIds: subnetIds(name, "isolated", azCount),
    };
  },
  "eks:index:Cluster": (name, _inputs, region) => ({
    kubeconfig: {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name, cluster: { server: `https://${name}.eks.${region}.amazonaws.com` } }],
      contexts: [{ name, context: { cluster: name, user: name } }],
      "current-context": name,
      users: [{ name, user: {} }],
    },
    kubeconfigJson: JSON.stringify({ apiVersion: "v1", kind: "Config", "current-context": name }),
    clusterSecurityGroupId: `sg-${name}-cluster`,
    nodeSecurityGroupId: `sg-${name}-node`,
    oidcProviderArn: arnFor("iam", "", `oidc-provider/oidc.eks.${region}.amazonaws.com/id/${name.toUpperCase()}`),
    oidcProviderUrl: `https://oidc.eks.${region}.amazonaws.com/id/${name.toUpperCase()}`,
    oidcIssuer: `oidc.eks.${region}.amazonaws.com/id/${name.toUpperCase()}`,
    eksCluster: { name, arn: arnFor("eks", region, `cluster/${name}`) },
    core: { cluster: { name } },
  }),
  "eks:index:ManagedNodeGroup": (name) => ({ nodeGroup: { nodeGroupName: name } }),
  "aws:rds/cluster:Cluster": (name, _inputs, region) => ({
    endpoint: `${name}.cluster-mock.${region}.rds.amazonaws.com`,
    readerEndpoint: `${name}.cluster-ro-mock.${region}.rds.amazonaws.com`,
    port: 5432,
    masterUserSecrets: [{ secretArn: arnFor("secretsmanager", region, `secret:rds!${name}`), secretStatus: "active" }],
  }),
  "aws:rds/proxy:Proxy": (name, _inputs, region) => ({
    endpoint: `${name}.proxy-mock.${region}.rds.amazonaws.com`,
    arn: arnFor("rds", region, `db-proxy:prx-${name}`),
  }),
  "aws:rds/proxyEndpoint:ProxyEndpoint": (name, _inputs, region) => ({
    endpoint: `${name}.endpoint.proxy-mock.${region}.rds.amazonaws.com`,
  }),
  "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup": () => ({ name: "default" }),
  "aws:elasticache/replicationGroup:ReplicationGroup": (name, _inputs, region) => ({
    primaryEndpointAddress: `master.${name}.mock.${region}.cache.amazonaws.com`,
    readerEndpointAddress: `replica.${name}.mock.${region}.cache.amazonaws.com`,
    port: 6379,
  }),
  "aws:mq/broker:Broker": (name, _inputs, region) => ({
    instances: [
      {
        endpoints: [`amqps://${name}.mq.${region}.amazonaws.com:5671`],
        consoleUrl: `https://${name}.mq.${region}.amazonaws.com`,
        ipAddress: "",
      },
    ],
  }),
  "aws:s3/bucket:Bucket": (name, inputs, region) => {
    const bucket = typeof inputs.bucket === "string" ? inputs.bucket : name;
    return {
      bucket,
      bucketDomainName: `${bucket}.s3.amazonaws.com`,
      bucketRegionalDomainName: `${bucket}.s3.${region}.amazonaws.com`,
      arn: `arn:aws:s3:::${bucket}`,
    };
  },
  "aws:cloudfront/distribution:Distribution": (name) => ({
    domainName: `${name}.cloudfront.net`,
    hostedZoneId: "Z2FDTNDATAQYW2",
    arn: arnFor("cloudfront", "", `distribution/${name.toUpperCase()}`),
  }),
  "aws:acm/certificate:Certificate": (name, inputs, region) => ({
    arn: arnFor("acm", region, `certificate/${name}`),
    domainValidationOptions: [
      {
        domainName: inputs.domainName,
        resourceRecordName: `_${name}.${String(inputs.domainName)}.`,
        resourceRecordType: "CNAME",
        resourceRecordValue: `_${name}.mock.acm-validations.aws.`,
      },
    ],
  }),
  "aws:acm/certificateValidation:CertificateValidation": (_name, inputs) => ({
    certificateArn: inputs.certificateArn,
  }),
  "aws:route53/record:Record": (_name, inputs) => ({ fqdn: String(inputs.name).replace(/\.$/, "") }),
  "tls:index/privateKey:PrivateKey": (name) => ({
    publicKeyPem: `-----BEGIN PUBLIC KEY-----\nmock-${name}\n-----END PUBLIC KEY-----\n`,
    privateKeyPem: `-----BEGIN RSA PRIVATE KEY-----\nmock-${name}\n-----END RSA PRIVATE KEY-----\n`,
  }),
  // a new template's first version; node groups pin it
  "aws:ec2/launchTemplate:LaunchTemplate": () => ({ latestVersion: 1, defaultVersion: 1 }),
  "aws:cloudwatch/logGroup:LogGroup": (name, inputs, region) => ({
    arn: arnFor("logs", region, `log-group:${String(inputs.name ?? name)}`),
  }),
  "aws:iam/role:Role": (name) => ({ arn: arnFor("iam", "", `role/${name}`), name }),
  "aws:iam/policy:Policy": (name) => ({ arn: arnFor("iam", "", `policy/${name}`), name }),
  "aws:kms/key:Key": (name, _inputs, region) => ({ arn: arnFor("kms", region, `key/${name}`), keyId: name }),
  "aws:secretsmanager/secret:Secret": (name, _inputs, region) => ({
    arn: arnFor("secretsmanager", region, `secret:${name}`),
  }),
  "aws:ecr/repository:Repository": (name, inputs, region) => ({
    repositoryUrl: `${MOCK_ACCOUNT_ID}.dkr.ecr.${region}.amazonaws.com/${String(inputs.name ?? name)}`,
  }),
  "random:index/randomPassword:RandomPassword": (name) => ({ result: `mock-password-${name}` }),
  // A pushed image: its digest is a hash of the resource name (stable across runs), ref as docker-build gives it.
  "docker-build:index:Image": (name, inputs) => {
    const digest = `sha256:${createHash("sha256").update(name).digest("hex")}`;
    const tags = Array.isArray(inputs.tags) ? inputs.tags.map(String) : [];
    return { digest, ref: tags[0] ? `${tags[0]}@${digest}` : "", contextHash: `mock-context-${name}` };
  },
};

/** Provider functions the program calls (data sources). */
const callResults: Record<string, (inputs: Record<string, unknown>, region: string) => Record<string, unknown>> = {
  "aws:index/getRegion:getRegion": (_inputs, region) => ({ name: region, region, id: region }),
  "aws:index/getCallerIdentity:getCallerIdentity": () => ({
    accountId: MOCK_ACCOUNT_ID,
    arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:user/plan`,
    userId: "plan",
  }),
  "aws:index/getPartition:getPartition": () => ({ partition: "aws", dnsSuffix: "amazonaws.com" }),
  "aws:index/getAvailabilityZones:getAvailabilityZones": (_inputs, region) => ({
    names: ["a", "b", "c"].map((zone) => `${region}${zone}`),
    zoneIds: ["1", "2", "3"].map((zone) => `${region}-az${zone}`),
  }),
  "aws:route53/getZone:getZone": (inputs) => {
    const slug = String(inputs.name)
      .toUpperCase()
      .replace(/[^A-Z0-9]/g, "");
    return { id: `Z${slug}`, zoneId: `Z${slug}`, name: inputs.name, privateZone: false };
  },
  "aws:ecr/getAuthorizationToken:getAuthorizationToken": (_inputs, region) => ({
    authorizationToken: "QVdTOm1vY2stZWNyLXBhc3N3b3Jk",
    proxyEndpoint: `https://${MOCK_ACCOUNT_ID}.dkr.ecr.${region}.amazonaws.com`,
    userName: "AWS",
    password: "mock-ecr-password",
    expiresAt: "2000-01-01T12:00:00Z",
  }),
  "aws:ssm/getParameter:getParameter": (inputs) => ({ value: `ami-mock-${String(inputs.name).split("/").at(-2)}` }),
};

/** The id a mocked resource gets: plans (and the guardrails reading them) see references to it as this string. */
export function mockIdOf(name: string): string {
  return `${name}-id`;
}

export function createMocks(stackRegion: string): pulumi.runtime.Mocks {
  // A resource made through an explicit AWS provider (CloudFront's certificate: us-east-1) lives in that provider's
  // region. A provider reference is "<urn>::<id>", and a mocked provider's id is mockIdOf(its name).
  const regionOfProvider = new Map<string, string>();
  return {
    newResource(args) {
      const inputs = (args.inputs ?? {}) as Record<string, unknown>;
      if (args.type === "pulumi:providers:aws" && typeof inputs.region === "string") {
        regionOfProvider.set(mockIdOf(args.name), inputs.region);
      }
      const region = regionOfProvider.get(args.provider?.split("::").at(-1) ?? "") ?? stackRegion;
      const extra = outputsByType[args.type]?.(args.name, inputs, region) ?? {};
      const id = args.custom ? mockIdOf(args.name) : undefined;
      const arn = args.custom
        ? { arn: arnFor(args.type.split(":")[1]?.split("/")[0] ?? "aws", region, args.name) }
        : {};
      return { id, state: { ...arn, ...inputs, ...extra } };
    },
    call(args) {
      const result = callResults[args.token];
      return result ? result((args.inputs ?? {}) as Record<string, unknown>, stackRegion) : {};
    },
  };
}
