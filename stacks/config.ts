import { type Static, type TLiteral, type TSchema, type TUnion, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

/**
 * The stack configuration: one schema for every stack. Dev and prod differ only in the values of
 * Pulumi.<stack>.yaml; cost-bearing HA is switched on there, never hidden in code (STYLE.md rule 4).
 *
 * Structured values arrive from Pulumi as JSON strings under `<namespace>:<key>`; `parseStackConfig` turns that flat
 * map into this typed object and rejects it, before any resource is declared, with every bad key named.
 */

export const PROJECT = "ndt-platform";

/**
 * The EKS versions this platform pins and checks objects against: in EKS standard support when last reviewed (older
 * ones cost extended-support fees). Guardrail A3 reads the same list. Adding one is a deliberate upgrade: K12's schema and the add-on charts must support it.
 */
export const SUPPORTED_KUBERNETES_VERSIONS = ["1.31", "1.32", "1.33", "1.34"] as const;

const strict = { additionalProperties: false } as const;
const Cidr = Type.String({
  pattern: "^(25[0-5]|2[0-4]\\d|1?\\d?\\d)(\\.(25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}/([0-9]|[12]\\d|3[0-2])$",
  description: "an IPv4 CIDR block such as 10.40.0.0/16",
});
const HostName = Type.String({ pattern: "^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", description: "a DNS name" });
const Email = Type.String({ pattern: "^[^@\\s]+@([a-z0-9-]+\\.)+[a-z]{2,}$", description: "an e-mail address" });
const Count = (minimum: number, maximum: number) => Type.Integer({ minimum, maximum });
const OneOf = <const T extends readonly string[]>(...values: T) =>
  Type.Union(values.map((value) => Type.Literal(value))) as unknown as TUnion<TLiteral<T[number]>[]>;

const NodeGroupConfig = <T extends TSchema, A extends TSchema>(instanceType: T, amiType: A) =>
  Type.Object(
    {
      /** Instance types, most preferred first; several types widen the spot pool. */
      instanceTypes: Type.Array(instanceType, { minItems: 1 }),
      amiType,
      capacityType: OneOf("ON_DEMAND", "SPOT"),
      minSize: Count(0, 100),
      desiredSize: Count(0, 100),
      maxSize: Count(1, 100),
      diskSizeGiB: Count(20, 1000),
    },
    strict,
  );

export const ProjectConfigSchema = Type.Object(
  {
    environment: OneOf("dev", "prod"),
    domain: Type.Object(
      {
        /** The public Route53 hosted zone that holds the platform's records. */
        zoneName: HostName,
        /** The API's public host name (ingress, TLS from cert-manager). */
        apiHost: HostName,
        /** CloudFront's host name for signed report and image URLs. */
        mediaHost: HostName,
      },
      strict,
    ),
    network: Type.Object(
      {
        cidrBlock: Cidr,
        availabilityZones: Count(2, 3),
        /** `onePerAz` survives an AZ outage; `single` saves two NAT gateways' cost in dev. */
        natGateways: OneOf("single", "onePerAz"),
      },
      strict,
    ),
    cluster: Type.Object(
      {
        kubernetesVersion: OneOf(...SUPPORTED_KUBERNETES_VERSIONS),
        /** Empty: the API endpoint is private only. Otherwise the public endpoint answers these CIDRs alone. */
        publicAccessCidrs: Type.Array(Cidr),
        /**
         * IAM roles granted cluster admin through access entries (break-glass). Not the role that creates the cluster
         * (the deploy role): EKS gives its creator an entry itself (@pulumi/eks always asks it to), and a second entry
         * for the same role fails with 409 ResourceInUseException.
         */
        adminRoleArns: Type.Array(Type.String({ pattern: "^arn:aws:iam::\\d{12}:role/.+$" })),
        systemNodes: NodeGroupConfig(
          Type.String({ pattern: "^[a-z][a-z0-9]*\\.[a-z0-9]+$" }),
          OneOf("AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"),
        ),
        gpuNodes: NodeGroupConfig(
          Type.String({ pattern: "^g[56]\\.[a-z0-9]+$", description: "a g5 or g6 instance type" }),
          OneOf("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"),
        ),
        logRetentionDays: Count(1, 3653),
      },
      strict,
    ),
    database: Type.Object(
      {
        engineVersion: Type.String({ pattern: "^1[5-7]\\.\\d+$" }),
        instanceClass: Type.String({ pattern: "^db\\.[a-z0-9]+\\.[a-z0-9]+$" }),
        /** Writer plus readers; each lands in its own AZ. */
        instances: Count(1, 15),
        backupRetentionDays: Count(1, 35),
        deletionProtection: Type.Boolean(),
        performanceInsights: Type.Boolean(),
        /** RDS Proxy pools connections in front of Aurora (the role PgBouncer plays in a self-run setup). */
        rdsProxy: Type.Boolean(),
      },
      strict,
    ),
    cache: Type.Object(
      {
        engine: OneOf("redis", "valkey"),
        engineVersion: Type.String({ pattern: "^\\d+\\.\\d+$" }),
        nodeType: Type.String({ pattern: "^cache\\.[a-z0-9]+\\.[a-z0-9]+$" }),
        nodes: Count(1, 6),
        multiAz: Type.Boolean(),
        /** Days of daily snapshots kept. */
        snapshotRetentionDays: Count(0, 35),
      },
      strict,
    ),
    broker: Type.Object(
      {
        engineVersion: Type.String({ pattern: "^(3\\.(1[3-9])|[4-9]\\.\\d+)$", description: "RabbitMQ 3.13 or newer" }),
        instanceType: Type.String({ pattern: "^mq\\.[a-z0-9]+\\.[a-z0-9]+$" }),
        deploymentMode: OneOf("SINGLE_INSTANCE", "CLUSTER_MULTI_AZ"),
      },
      strict,
    ),
    storage: Type.Object(
      {
        /** Server access logs for the buckets and CloudFront (to the logs bucket). */
        accessLogging: Type.Boolean(),
        /** A WAFv2 web ACL (AWS managed rule groups) in front of CloudFront. */
        waf: Type.Boolean(),
        /** Noncurrent object versions are kept this long, then expire. */
        noncurrentVersionDays: Count(1, 3650),
        /** Generated reports are cache: they can be made again, so they expire. */
        reportsExpireDays: Count(1, 3650),
      },
      strict,
    ),
    registry: Type.Object(
      {
        /** How many tagged images each repository keeps. */
        keepImages: Count(1, 1000),
      },
      strict,
    ),
    services: Type.Object(
      {
        /** What every image is deployed at: the tag CI built (the commit) or a digest; never `latest` (K4). */
        imageTag: Type.String({
          pattern: "^(sha256:[a-f0-9]{64}|(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$",
          description: "an image tag other than latest, or sha256:<digest>",
        }),
        /** The detection model in the models bucket, and the sha256 the worker checks before it starts. */
        detectorModel: Type.Object(
          {
            key: Type.String({
              pattern: "^models/[A-Za-z0-9._/-]+\\.onnx$",
              description: "a key such as models/x.onnx",
            }),
            sha256: Type.String({ pattern: "^[a-f0-9]{64}$", description: "a sha256 in hex" }),
            /** The post-processing the model card measured its quality bar with: they travel with the model. */
            confidenceThreshold: Type.Number({ minimum: 0, maximum: 1, description: "a number in 0..1" }),
            nmsIou: Type.Number({ minimum: 0, maximum: 1, description: "a number in 0..1" }),
            classAgnosticNms: Type.Boolean(),
          },
          strict,
        ),
      },
      strict,
    ),
    addons: Type.Object(
      {
        /** The ACME account's contact: Let's Encrypt writes here about certificates that are not renewing. */
        acmeEmail: Email,
        /** The ClusterIssuer the ingress takes its certificate from: staging in dev (no rate limits), production in prod. */
        clusterIssuer: OneOf("letsencrypt-staging", "letsencrypt-production"),
        /** Replicas of the controllers that carry traffic or admission webhooks; prod runs 2+ so a node can drain. */
        controllerReplicas: Count(1, 5),
        /** How long Prometheus keeps samples, and the volume that holds them. */
        prometheusRetentionDays: Count(1, 90),
        prometheusStorageGiB: Count(10, 2000),
        /** Days container logs stay in CloudWatch Logs. */
        containerLogRetentionDays: Count(1, 3653),
      },
      strict,
    ),
    observability: Type.Object(
      {
        /** Where Alertmanager sends alerts. The credential is never here: it lives in `receiverSecretName`. */
        receiver: OneOf("slack", "email"),
        /** Slack channel the webhook posts to (receiver slack). */
        slackChannel: Type.Optional(
          Type.String({ pattern: "^#[a-z0-9_-]+$", description: "a Slack channel like #alerts" }),
        ),
        /** Mail routing (receiver email); the SMTP password is in the secret, the (non-secret) SMTP user here. */
        email: Type.Optional(
          Type.Object(
            {
              to: Email,
              from: Email,
              smarthost: Type.String({ pattern: "^[a-z0-9.-]+:\\d+$" }),
              username: Type.String(),
            },
            strict,
          ),
        ),
        /**
         * Secrets Manager secret name holding `{"url": "<slack webhook>"}` or `{"password": "<smtp password>"}`,
         * put there by an operator; External Secrets syncs it into the monitoring namespace.
         */
        receiverSecretName: Type.String({
          pattern: "^ndt/(dev|prod)/[a-z0-9/-]+$",
          description: "a name under ndt/<stack>/",
        }),
      },
      strict,
    ),
  },
  strict,
);

export const AwsConfigSchema = Type.Object(
  { region: Type.String({ pattern: "^[a-z]{2}(-gov)?-[a-z]+-\\d$", description: "an AWS region such as eu-west-1" }) },
  strict,
);

export type ProjectConfig = Static<typeof ProjectConfigSchema>;
export type StackConfig = ProjectConfig & { region: string };
export type NodeGroupSettings = ProjectConfig["cluster"]["systemNodes"];

export interface ConfigProblem {
  /** `<namespace>:<key>.<path>` as it is written in Pulumi.<stack>.yaml. */
  path: string;
  reason: string;
}

/** Thrown before any resource is declared; its message lists every problem, one per line. */
export class StackConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
    source = "stack configuration",
  ) {
    super(`${source} is invalid:\n${problems.map((problem) => `  - ${problem.path}: ${problem.reason}`).join("\n")}`);
    this.name = "StackConfigError";
  }
}

/** Namespaces whose keys may appear in a stack file; anything else is a typo. */
const KNOWN_NAMESPACES = new Set([PROJECT, "aws", "pulumi", "kubernetes"]);

/**
 * Turns Pulumi's flat configuration map (`{"ndt-platform:cluster": "{...json...}"}`) into the typed stack config,
 * or throws one StackConfigError naming every bad key.
 */
export function parseStackConfig(flat: Readonly<Record<string, string>>, source?: string): StackConfig {
  const problems: ConfigProblem[] = [];
  const byNamespace: Record<string, Record<string, unknown>> = { [PROJECT]: {}, aws: {} };
  for (const [fullKey, raw] of Object.entries(flat).sort(([a], [b]) => a.localeCompare(b))) {
    const separator = fullKey.indexOf(":");
    const namespace = separator < 0 ? PROJECT : fullKey.slice(0, separator);
    const key = fullKey.slice(separator + 1);
    if (!KNOWN_NAMESPACES.has(namespace)) {
      problems.push({ path: fullKey, reason: `unknown namespace "${namespace}" (expected ${PROJECT}: or aws:)` });
      continue;
    }
    const bucket = byNamespace[namespace];
    if (!bucket) continue; // pulumi: and kubernetes: settings belong to the engine and providers
    bucket[key] = decodeConfigValue(raw);
  }
  problems.push(...schemaProblems(ProjectConfigSchema, byNamespace[PROJECT], PROJECT));
  problems.push(...schemaProblems(AwsConfigSchema, byNamespace.aws, "aws"));
  if (problems.length === 0) {
    const project = byNamespace[PROJECT] as ProjectConfig;
    problems.push(...crossFieldProblems(project));
    if (problems.length === 0) return { ...project, region: String(byNamespace.aws?.region) };
  }
  throw new StackConfigError(problems, source);
}

/** Pulumi hands structured values over as JSON text and scalars as plain strings. */
function decodeConfigValue(raw: string): unknown {
  const trimmed = raw.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return raw;
    }
  }
  return raw;
}

function schemaProblems(schema: TSchema, value: unknown, namespace: string): ConfigProblem[] {
  const seen = new Map<string, string>();
  for (const error of Value.Errors(schema, value)) {
    const segments = error.path.split("/").slice(1);
    const path = `${namespace}:${segments.join(".")}`;
    if (seen.has(path)) continue; // a union reports once per member: the first reason is the clearest
    seen.set(path, describeError(error.message, error.schema, error.value));
  }
  return [...seen].map(([path, reason]) => ({ path, reason }));
}

function describeError(message: string, schema: TSchema, value: unknown): string {
  const got = value === undefined ? "" : ` (got ${JSON.stringify(value)})`;
  if (message === "Expected required property") return "missing required key";
  if (message === "Unexpected property") return "unknown key";
  if (Array.isArray(schema.anyOf)) {
    const allowed = schema.anyOf.map((member: TSchema) => JSON.stringify(member.const)).join(", ");
    return `must be one of ${allowed}${got}`;
  }
  if (typeof schema.description === "string") return `must be ${schema.description}${got}`;
  return `${message.toLowerCase()}${got}`;
}

/** Rules that span keys; reported only once every key has the right shape. */
export function crossFieldProblems(config: ProjectConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const group of ["systemNodes", "gpuNodes"] as const) {
    const { minSize, desiredSize, maxSize } = config.cluster[group];
    if (!(minSize <= desiredSize && desiredSize <= maxSize)) {
      problems.push({
        path: `${PROJECT}:cluster.${group}`,
        reason: `needs minSize <= desiredSize <= maxSize (got ${minSize}, ${desiredSize}, ${maxSize})`,
      });
    }
  }
  if (config.cache.multiAz && config.cache.nodes < 2) {
    problems.push({ path: `${PROJECT}:cache.nodes`, reason: "multiAz needs at least 2 nodes" });
  }
  if (config.database.instances > config.network.availabilityZones && config.database.instances > 1) {
    // More instances than AZs is legal but silently doubles up; say so rather than guess.
    problems.push({
      path: `${PROJECT}:database.instances`,
      reason: `${config.database.instances} instances over ${config.network.availabilityZones} AZs: at most one per AZ`,
    });
  }
  if (
    !config.domain.apiHost.endsWith(config.domain.zoneName) ||
    !config.domain.mediaHost.endsWith(config.domain.zoneName)
  ) {
    problems.push({
      path: `${PROJECT}:domain`,
      reason: `apiHost and mediaHost must lie in zone ${config.domain.zoneName}`,
    });
  }
  problems.push(...observabilityProblems(config));
  return problems;
}

function observabilityProblems(config: ProjectConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { receiver, slackChannel, email, receiverSecretName } = config.observability;
  if (receiver === "slack" && !slackChannel) {
    problems.push({ path: `${PROJECT}:observability.slackChannel`, reason: "receiver slack needs slackChannel" });
  }
  if (receiver === "email" && !email) {
    problems.push({ path: `${PROJECT}:observability.email`, reason: "receiver email needs email.to/from/smarthost" });
  }
  // External Secrets may read ndt/<stack>/* only (A14): a secret elsewhere would never sync.
  if (!receiverSecretName.startsWith(`ndt/${config.environment}/`)) {
    problems.push({
      path: `${PROJECT}:observability.receiverSecretName`,
      reason: `must lie under ndt/${config.environment}/ (got ${receiverSecretName})`,
    });
  }
  // Staging certificates are not trusted by browsers: prod never serves one.
  if (config.environment === "prod" && config.addons.clusterIssuer !== "letsencrypt-production") {
    problems.push({
      path: `${PROJECT}:addons.clusterIssuer`,
      reason: `prod serves trusted certificates: letsencrypt-production (got ${config.addons.clusterIssuer})`,
    });
  }
  return problems;
}
