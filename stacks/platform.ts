import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { Cluster } from "../infra/aws/cluster.js";
import { Keys } from "../infra/aws/keys.js";
import { Network } from "../infra/aws/network.js";
import type { StackConfig } from "./config.js";

/**
 * One cloud environment, composed from the typed stack config: the AWS foundation first, then what runs on it.
 * Returns the stack outputs.
 */
export function definePlatform(config: StackConfig): Record<string, pulumi.Input<unknown>> {
  const prod = config.environment === "prod";
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
    kmsKeyArn: keys.keys.cluster.arn,
    logsKmsKeyArn: keys.keys.logs.arn,
    logRetentionDays: config.cluster.logRetentionDays,
    systemNodes: config.cluster.systemNodes,
    gpuNodes: config.cluster.gpuNodes,
    deletionProtection: prod,
  });

  // Everything on the cluster goes through this provider; server-side apply lets add-ons and Pulumi share fields.
  const kubernetes = new k8s.Provider("kubernetes", {
    kubeconfig: pulumi.secret(cluster.kubeconfigJson),
    enableServerSideApply: true,
  });
  void kubernetes; // used by the Kubernetes components (infra/k8s)

  return {
    environment: config.environment,
    region: config.region,
    apiUrl: `https://${config.domain.apiHost}`,
    clusterName: cluster.name,
    vpcId: network.vpcId,
    kubeconfig: pulumi.secret(cluster.kubeconfigJson),
  };
}
