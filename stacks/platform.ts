import type * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { AppSecrets } from "../infra/aws/app-secrets.js";
import { Broker } from "../infra/aws/broker.js";
import { Cache } from "../infra/aws/cache.js";
import { Cluster } from "../infra/aws/cluster.js";
import { Database } from "../infra/aws/database.js";
import { Keys } from "../infra/aws/keys.js";
import { Network } from "../infra/aws/network.js";
import { Registry } from "../infra/aws/registry.js";
import { Storage } from "../infra/aws/storage.js";
import { Addons } from "../infra/k8s/addons/index.js";
import { Applications } from "../infra/k8s/applications.js";
import { Observability, type ReceiverSettings } from "../infra/k8s/observability/index.js";
import { Images } from "../infra/aws/images.js";
import type { StackConfig } from "./config.js";
import { imagesOf, topology as platformTopology, validateTopology } from "./topology.js";

/** The model file `pulumi up` uploads, relative to the project directory (where Pulumi runs the program). */
export const DETECTOR_MODEL_FILE = "apps/detector/model/defects.onnx";

/**
 * One cloud environment, composed from the typed stack config: the AWS foundation first, then what runs on it.
 * Returns the stack outputs.
 */
export function definePlatform(
  config: StackConfig,
  topologyInput: unknown = platformTopology,
): Record<string, pulumi.Input<unknown>> {
  const prod = config.environment === "prod";
  // Before any resource: a bad topology fails with every service and reason named, nothing half-declared.
  const topology = validateTopology(topologyInput, { gpuNodes: config.cluster.gpuNodes.maxSize > 0 });
  const clusterName = `ndt-${pulumi.getStack()}`;

  const keys = new Keys("keys");
  const network = new Network("network", {
    cidrBlock: config.network.cidrBlock,
    availabilityZones: config.network.availabilityZones,
    natGateways: config.network.natGateways,
    clusterName,
  });
  const cluster = new Cluster("cluster", {
    vpcId: network.vpcId,
    privateSubnetIds: network.privateSubnetIds,
    publicSubnetIds: network.publicSubnetIds,
    kubernetesVersion: config.cluster.kubernetesVersion,
    publicAccessCidrs: config.cluster.publicAccessCidrs,
    adminRoleArns: config.cluster.adminRoleArns,
    privateEndpointClientCidr: config.network.cidrBlock,
    kmsKeyArn: keys.keys.cluster.arn,
    logsKmsKeyArn: keys.keys.logs.arn,
    logRetentionDays: config.cluster.logRetentionDays,
    systemNodes: config.cluster.systemNodes,
    gpuNodes: config.cluster.gpuNodes,
    deletionProtection: prod,
  });

  // Data tiers: isolated subnets, the data key, and only the cluster's security group may connect (A13).
  const dataTier = {
    vpcId: network.vpcId,
    subnetIds: network.isolatedSubnetIds,
    clientSecurityGroupId: cluster.clusterSecurityGroupId,
    kmsKeyArn: keys.keys.data.arn,
  };
  const database = new Database("database", {
    ...dataTier,
    availabilityZoneCount: config.network.availabilityZones,
    engineVersion: config.database.engineVersion,
    instanceClass: config.database.instanceClass,
    instances: config.database.instances,
    backupRetentionDays: config.database.backupRetentionDays,
    deletionProtection: config.database.deletionProtection,
    // A protected database also keeps a snapshot when it is deleted on purpose; dev's throwaway data does not.
    skipFinalSnapshot: !config.database.deletionProtection,
    performanceInsights: config.database.performanceInsights,
    rdsProxy: config.database.rdsProxy,
    logsKmsKeyArn: keys.keys.logs.arn,
    logRetentionDays: config.cluster.logRetentionDays,
  });
  const cache = new Cache("cache", {
    ...dataTier,
    engine: config.cache.engine,
    engineVersion: config.cache.engineVersion,
    nodeType: config.cache.nodeType,
    nodes: config.cache.nodes,
    multiAz: config.cache.multiAz,
    snapshotRetentionDays: config.cache.snapshotRetentionDays,
    logsKmsKeyArn: keys.keys.logs.arn,
    logRetentionDays: config.cluster.logRetentionDays,
  });
  const broker = new Broker("broker", {
    ...dataTier,
    engineVersion: config.broker.engineVersion,
    instanceType: config.broker.instanceType,
    deploymentMode: config.broker.deploymentMode,
  });

  // The services' own secrets (auth's signing-key secret), generated once, where their ExternalSecrets read them.
  const appSecrets = new AppSecrets("app-secrets", {
    environment: config.environment,
    secrets: topology.services.flatMap((service) => Object.values(service.secrets ?? {})),
    kmsKeyArn: keys.keys.data.arn,
  });

  // Buckets and the media CDN: private, SSE-KMS with the storage key; logging and WAF switched on by stack config.
  const storage = new Storage("storage", {
    keys,
    zoneName: config.domain.zoneName,
    mediaHost: config.domain.mediaHost,
    noncurrentVersionDays: config.storage.noncurrentVersionDays,
    reportsExpireDays: config.storage.reportsExpireDays,
    accessLogging: config.storage.accessLogging,
    waf: config.storage.waf,
  });
  const registry = new Registry("registry", {
    apps: imagesOf(topology),
    keepImages: config.registry.keepImages,
  });
  // Every image the topology names, built and pushed under the release tag; the workloads run them by digest.
  const images = new Images("images", {
    topology,
    repositories: registry.repositoryUrls,
    imageTag: config.services.imageTag,
  });

  // Everything on the cluster goes through this provider; server-side apply lets add-ons and Pulumi share fields.
  const kubernetes = new k8s.Provider("kubernetes", {
    kubeconfig: pulumi.secret(cluster.kubeconfigJson),
    enableServerSideApply: true,
  });

  // Cluster add-ons (ingress, TLS, DNS, secrets, autoscaling, GPU, metrics, logs): infra/k8s/addons.
  const addons = new Addons("addons", {
    cluster,
    provider: kubernetes,
    environment: config.environment,
    region: config.region,
    vpcId: network.vpcId,
    vpcCidr: config.network.cidrBlock,
    kubernetesVersion: config.cluster.kubernetesVersion,
    zoneName: config.domain.zoneName,
    ...config.addons,
    gpuAmiType: config.cluster.gpuNodes.amiType,
    hasGpuNodes: cluster.hasGpuNodes,
    secretsKmsKeyArn: keys.keys.data.arn,
    logsKmsKeyArn: keys.keys.logs.arn,
    extraSecretArns: [database.connection.secretArn, cache.connection.authSecretArn, broker.connection.secretArn],
  });
  // Alerting, rules and dashboards on the add-ons' kube-prometheus-stack: infra/k8s/observability.
  new Observability(
    "observability",
    {
      provider: kubernetes,
      environment: config.environment,
      receiver: receiverOf(config.observability),
      broker: broker.connection,
      exporterReplicas: config.addons.controllerReplicas,
    },
    { dependsOn: addons.ready },
  );

  // The released detector model, uploaded from this commit under the key the stack file names: the worker's init
  // container fetches it and checks the sha256 the stack file pins (stacks/config.test.ts ties both to the file).
  const detectorModel = storage.publishFile(
    "models",
    config.services.detectorModel.key,
    DETECTOR_MODEL_FILE,
    "application/octet-stream",
  );

  // The services of the topology, wired to the data tiers through their typed connections.
  const bucket = (purpose: "uploads" | "reports" | "models") => ({
    connection: storage.buckets[purpose],
    grantRead: (role: aws.iam.Role, prefix: string) => storage.grantRead(purpose, role, prefix),
    grantReadWrite: (role: aws.iam.Role, prefix: string) => storage.grantReadWrite(purpose, role, prefix),
  });
  new Applications(
    "apps",
    {
      topology,
      environment: config.environment,
      kubernetesVersion: config.cluster.kubernetesVersion,
      vpcCidr: config.network.cidrBlock,
      repositories: registry.repositoryUrls,
      imageTag: config.services.imageTag,
      images: images.deployRefs,
      detectorModel: config.services.detectorModel,
      apiHost: config.domain.apiHost,
      clusterIssuer: config.addons.clusterIssuer,
      connections: {
        database: database.connection,
        cache: cache.connection,
        broker: broker.connection,
        buckets: { uploads: bucket("uploads"), reports: bucket("reports"), models: bucket("models") },
      },
      serviceAccountRole: (namespace, serviceAccount) =>
        cluster.serviceAccountRole(serviceAccount, namespace, serviceAccount),
    },
    // CRDs (ExternalSecret, ServiceMonitor, ScaledObject), the ingress class and issuers come with the add-ons.
    { providers: [kubernetes], dependsOn: [addons, appSecrets, detectorModel] },
  );

  return {
    environment: config.environment,
    region: config.region,
    apiUrl: `https://${config.domain.apiHost}`,
    clusterIssuer: addons.clusterIssuer,
    clusterName: cluster.name,
    vpcId: network.vpcId,
    clusterSecurityGroupId: cluster.clusterSecurityGroupId,
    databaseEndpoint: database.connection.host,
    databaseReaderEndpoint: database.connection.readerHost,
    cacheEndpoint: cache.connection.host,
    brokerUrl: broker.connection.url,
    brokerManagementUrl: broker.connection.managementUrl,
    uploadsBucket: storage.buckets.uploads.name,
    reportsBucket: storage.buckets.reports.name,
    modelsBucket: storage.buckets.models.name,
    mediaDomain: storage.mediaDomain,
    mediaKeyPairId: storage.signing.keyPairId,
    repositoryUrls: registry.repositoryUrls,
    imageRefs: images.refs,
    kubeconfig: pulumi.secret(cluster.kubeconfigJson),
  };
}

/** The stack's alert receiver; config validation has ensured the chosen type's settings are present. */
function receiverOf(settings: StackConfig["observability"]): ReceiverSettings {
  const secretName = settings.receiverSecretName;
  if (settings.receiver === "slack") return { type: "slack", channel: settings.slackChannel ?? "", secretName };
  const email = settings.email ?? { to: "", from: "", smarthost: "", username: "" };
  return { type: "email", ...email, secretName };
}
