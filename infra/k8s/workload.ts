import type * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { BucketName, ConnectionName, ServiceSpec } from "../../stacks/topology.js";
import type {
  BrokerConnection,
  BucketConnection,
  CacheConnection,
  DatabaseConnection,
  Grant,
} from "../aws/connections.js";
import { APP_SECRET_PROPERTY, appSecretPath } from "../aws/app-secrets.js";
import { CLUSTER_SECRET_STORE, MONITORING_NAMESPACE, SERVICE_MONITOR_LABELS } from "./names.js";

/**
 * What FastifyService, DetectionWorker and the migrations Job share: the restricted security context (K2), the env a
 * service gets from its typed connections (settings as plain env, credentials only through an ExternalSecret, K11),
 * the NetworkPolicy egress each connection opens (K8), and the ServiceMonitor.
 */

import k8sInput = k8s.types.input;
export type EnvVar = k8sInput.core.v1.EnvVar;
export type NetworkPolicyEgressRule = k8sInput.networking.v1.NetworkPolicyEgressRule;

/** The UID/GID every platform container runs as: non-root, and not one an image's base layers may use. */
export const APP_UID = 10001;

/** A bucket as a service consumes it: where it is, and the grants that scope an IRSA role to a prefix. */
export interface BucketAccess {
  connection: BucketConnection;
  grantRead: Grant;
  grantReadWrite: Grant;
}

/** The typed connections of infra/aws a service may be given; each service takes the ones its topology names. */
export interface Connections {
  database?: DatabaseConnection;
  cache?: CacheConnection;
  broker?: BrokerConnection;
  buckets?: Partial<Record<BucketName, BucketAccess>>;
}

/** Creates the IRSA role a service account assumes (`cluster.serviceAccountRole` in the platform). */
export type ServiceAccountRoleFactory = (namespace: string, serviceAccount: string) => aws.iam.Role;

/** Pod-level security context of PSS `restricted` (K2). */
export function podSecurityContext(): k8sInput.core.v1.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: APP_UID,
    runAsGroup: APP_UID,
    fsGroup: APP_UID,
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** Container-level security context of PSS `restricted`, with a read-only root filesystem (K2). */
export function containerSecurityContext(): k8sInput.core.v1.SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: APP_UID,
    runAsGroup: APP_UID,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/**
 * `repository:tag`, or `repository@sha256:...` for a digest (K4: never `latest`, never untagged). A repository that is
 * already a digest reference (`repository@sha256:...`, what infra/aws/images.ts built and pushed) is returned as
 * it is: the digest pins the image, the tag adds nothing.
 */
export function imageRef(repositoryUrl: pulumi.Input<string>, tagOrDigest: string): pulumi.Output<string> {
  return pulumi.output(repositoryUrl).apply((url) => {
    if (/@sha256:[a-f0-9]{64}$/.test(url)) return url;
    return tagOrDigest.startsWith("sha256:") ? `${url}@${tagOrDigest}` : `${url}:${tagOrDigest}`;
  });
}

/** Fixed ports of the AWS data tiers, for NetworkPolicy egress (the connections carry the endpoints). */
const AMQPS_PORT = 5671;
const HTTPS_PORT = 443;

/** Env, synced secret keys and egress a service needs for the connections its topology entry names. */
export interface ConnectionWiring {
  env: EnvVar[];
  /** `ExternalSecret.spec.data` entries: Secrets Manager secret + property → key of the service's Secret. */
  secretData: { secretKey: string; remoteRef: { key: pulumi.Input<string>; property?: string } }[];
  egress: NetworkPolicyEgressRule[];
  /** Buckets with their prefix and access: one grant each on the service's IRSA role. */
  grants: { bucket: BucketName; access: BucketAccess; prefix: string; mode: "read" | "readwrite" }[];
  /** Set when the database takes IAM auth: lets the service's IRSA role connect. */
  databaseGrant?: (role: aws.iam.Role) => aws.iam.RolePolicy;
  /** Files from the synced Secret (the database password): the pod's volumes and the container's mounts. */
  volumes: k8sInput.core.v1.Volume[];
  volumeMounts: k8sInput.core.v1.VolumeMount[];
}

/** Where the database password is mounted; read again for each new connection (DATABASE_PASSWORD_FILE). */
const DATABASE_PASSWORD_DIR = "/var/run/secrets/ndt/database";

/**
 * Turns a service's connections into env settings (non-secret), the Secret keys External Secrets fills from AWS
 * Secrets Manager, and the egress each one needs: the data tiers by port inside the VPC, S3 and STS on 443.
 * Throws when the platform has not supplied a connection the topology names (a wiring bug, not user input).
 */
export function wireConnections(
  spec: Pick<ServiceSpec, "name" | "connections" | "buckets" | "secrets">,
  connections: Connections,
  options: { secretName: string; vpcCidr: string; environment: "dev" | "prod" },
): ConnectionWiring {
  const env: EnvVar[] = [];
  const secretData: ConnectionWiring["secretData"] = [];
  const egress: NetworkPolicyEgressRule[] = [];
  const grants: ConnectionWiring["grants"] = [];
  let databaseGrant: ConnectionWiring["databaseGrant"];
  /** Set when the pod calls AWS APIs (S3, or STS for IAM database auth): the SDK's region, and HTTPS egress. */
  let awsRegion: pulumi.Input<string> | undefined;
  const volumes: ConnectionWiring["volumes"] = [];
  const volumeMounts: ConnectionWiring["volumeMounts"] = [];
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined)
      throw new Error(`${spec.name} needs the ${what} connection, which the platform did not pass`);
    return value;
  };
  const fromSecret = (name: string, key = name): EnvVar => ({
    name,
    valueFrom: { secretKeyRef: { name: options.secretName, key } },
  });
  const vpcEgress = (port: number): NetworkPolicyEgressRule => ({
    to: [{ ipBlock: { cidr: options.vpcCidr } }],
    ports: [{ protocol: "TCP", port }],
  });
  const has = (name: ConnectionName) => spec.connections.includes(name);

  if (has("database") || has("database-reader")) {
    const database = need(connections.database, "database");
    const url = (host: pulumi.Output<string>) =>
      host.apply((resolved) => `postgres://${database.username}@${resolved}:${database.port}/${database.database}`);
    if (has("database")) env.push({ name: "DATABASE_URL", value: url(database.host) });
    if (has("database-reader")) env.push({ name: "DATABASE_READER_URL", value: url(database.readerHost) });
    // Aurora's and RDS Proxy's certificates chain to Amazon roots that Node's default store lacks
    env.push({ name: "DATABASE_TLS", value: database.sslMode }, { name: "DATABASE_CA", value: "aws-rds" });
    if (database.iamAuth) {
      // an IAM token per connection, signed with the pod's IRSA credentials: no database password reaches the pod
      env.push({ name: "DATABASE_IAM_AUTH", value: "true" });
      databaseGrant = database.iamAuth.grantConnect;
      awsRegion = database.iamAuth.region;
    } else {
      // A file, not an env variable: RDS rotates the managed master password every week, External Secrets updates
      // the Secret and the kubelet the mounted file; each new connection reads it again, no restart needed.
      secretData.push({ secretKey: "DATABASE_PASSWORD", remoteRef: { key: database.secretArn, property: "password" } });
      volumes.push({
        name: "database-password",
        secret: { secretName: options.secretName, items: [{ key: "DATABASE_PASSWORD", path: "password" }] },
      });
      volumeMounts.push({ name: "database-password", mountPath: DATABASE_PASSWORD_DIR, readOnly: true });
      env.push({ name: "DATABASE_PASSWORD_FILE", value: `${DATABASE_PASSWORD_DIR}/password` });
    }
    egress.push(vpcEgress(database.port));
  }
  if (has("cache")) {
    const cache = need(connections.cache, "cache");
    env.push(
      { name: "REDIS_URL", value: cache.host.apply((host) => `rediss://${host}:${cache.port}`) },
      { name: "REDIS_TLS", value: "true" },
      fromSecret("REDIS_PASSWORD"),
    );
    secretData.push({ secretKey: "REDIS_PASSWORD", remoteRef: { key: cache.authSecretArn, property: "token" } });
    egress.push(vpcEgress(cache.port));
  }
  if (has("broker")) {
    const broker = need(connections.broker, "broker");
    env.push({ name: "AMQP_URL", value: broker.url }, fromSecret("AMQP_USERNAME"), fromSecret("AMQP_PASSWORD"));
    secretData.push(
      { secretKey: "AMQP_USERNAME", remoteRef: { key: broker.secretArn, property: "username" } },
      { secretKey: "AMQP_PASSWORD", remoteRef: { key: broker.secretArn, property: "password" } },
    );
    egress.push(vpcEgress(AMQPS_PORT));
  }
  for (const { bucket, prefix, access } of spec.buckets) {
    const granted = need(connections.buckets?.[bucket], `${bucket} bucket`);
    const variable = bucket.toUpperCase();
    env.push(
      { name: `S3_BUCKET_${variable}`, value: granted.connection.name },
      { name: `S3_PREFIX_${variable}`, value: prefix },
    );
    grants.push({ bucket, access: granted, prefix, mode: access });
    awsRegion ??= granted.connection.region;
  }
  if (awsRegion !== undefined) {
    env.push({ name: "AWS_REGION", value: awsRegion });
    // S3 (gateway endpoint prefixes) and STS for IRSA answer on public addresses: HTTPS only.
    egress.push({ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ protocol: "TCP", port: HTTPS_PORT }] });
  }
  for (const [variable, secret] of Object.entries(spec.secrets ?? {})) {
    env.push(fromSecret(variable));
    secretData.push({
      secretKey: variable,
      remoteRef: { key: appSecretPath(options.environment, secret), property: APP_SECRET_PROPERTY },
    });
  }
  return { env, secretData, egress, grants, volumes, volumeMounts, ...(databaseGrant ? { databaseGrant } : {}) };
}

/**
 * The ExternalSecret that syncs a service's credentials from AWS Secrets Manager into one Kubernetes Secret of the
 * same name, owned by External Secrets (deleted with it). The only way secrets reach pods (K11).
 */
export function externalSecret(
  name: string,
  namespace: string,
  labels: Record<string, string>,
  data: ConnectionWiring["secretData"],
  opts: pulumi.CustomResourceOptions,
  template?: Record<string, pulumi.Input<string>>,
): k8s.apiextensions.CustomResource {
  return new k8s.apiextensions.CustomResource(
    name,
    {
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: { name, namespace, labels },
      spec: {
        // a rotated credential (the weekly database password) reaches the pods within minutes
        refreshInterval: "5m",
        secretStoreRef: { kind: "ClusterSecretStore", name: CLUSTER_SECRET_STORE },
        target: {
          name,
          creationPolicy: "Owner",
          deletionPolicy: "Retain",
          ...(template ? { template: { engineVersion: "v2", data: template } } : {}),
        },
        data,
      },
    },
    opts,
  );
}

/** Scraped by kube-prometheus-stack (label `release`), from the named port's `/metrics`. */
export function serviceMonitor(
  name: string,
  namespace: string,
  labels: Record<string, string>,
  selector: Record<string, string>,
  port: string,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource {
  return new k8s.apiextensions.CustomResource(
    name,
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name, namespace, labels: { ...labels, ...SERVICE_MONITOR_LABELS } },
      spec: {
        selector: { matchLabels: selector },
        namespaceSelector: { matchNames: [namespace] },
        endpoints: [{ port, path: "/metrics", interval: "30s", scrapeTimeout: "10s" }],
      },
    },
    opts,
  );
}

/** Ingress from Prometheus (the monitoring namespace) to the metrics port. */
export function fromMonitoring(port: number): k8sInput.networking.v1.NetworkPolicyIngressRule {
  return {
    from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": MONITORING_NAMESPACE } } }],
    ports: [{ protocol: "TCP", port }],
  };
}

/** Spread over zones (K7) and, softly, over nodes. */
export function topologySpread(
  selector: Record<string, string>,
  zones: "DoNotSchedule" | "ScheduleAnyway",
): k8sInput.core.v1.TopologySpreadConstraint[] {
  return [
    {
      maxSkew: 1,
      topologyKey: "topology.kubernetes.io/zone",
      whenUnsatisfiable: zones,
      labelSelector: { matchLabels: selector },
    },
    {
      maxSkew: 1,
      topologyKey: "kubernetes.io/hostname",
      whenUnsatisfiable: "ScheduleAnyway",
      labelSelector: { matchLabels: selector },
    },
  ];
}

/**
 * The IRSA role for what a service reaches through AWS APIs: one grant per bucket and prefix, and `rds-db:connect`
 * when the database takes IAM auth. None when the service needs no AWS API; an error when it does and no role can be
 * made.
 */
export function serviceRole(
  wiring: ConnectionWiring,
  createRole: ServiceAccountRoleFactory | undefined,
  namespace: string,
  serviceAccount: string,
): aws.iam.Role | undefined {
  if (wiring.grants.length === 0 && !wiring.databaseGrant) return undefined;
  if (!createRole) {
    // without the role a bucket grant or IAM database auth needs, the pod could not reach its dependency
    throw new Error(`${namespace}/${serviceAccount} needs an IRSA role, but no role factory was given`);
  }
  const role = createRole(namespace, serviceAccount);
  for (const grant of wiring.grants) {
    if (grant.mode === "readwrite") grant.access.grantReadWrite(role, grant.prefix);
    else grant.access.grantRead(role, grant.prefix);
  }
  wiring.databaseGrant?.(role);
  return role;
}
