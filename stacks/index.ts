/**
 * The Pulumi entry point (Pulumi.yaml `main`): `pulumi up` runs this file for the selected stack.
 * `npm run plan` runs the same `definePlatform` under mocks.
 */
import * as pulumi from "@pulumi/pulumi";
import { parseStackConfig } from "./config.js";
import { definePlatform } from "./platform.js";

const outputs = definePlatform(parseStackConfig(pulumi.runtime.allConfig(), `stack "${pulumi.getStack()}"`));

export const environment = outputs.environment;
export const region = outputs.region;
export const apiUrl = outputs.apiUrl;
export const clusterName = outputs.clusterName;
export const vpcId = outputs.vpcId;
export const clusterSecurityGroupId = outputs.clusterSecurityGroupId;
export const databaseEndpoint = outputs.databaseEndpoint;
export const databaseReaderEndpoint = outputs.databaseReaderEndpoint;
export const cacheEndpoint = outputs.cacheEndpoint;
export const brokerUrl = outputs.brokerUrl;
export const brokerManagementUrl = outputs.brokerManagementUrl;
export const uploadsBucket = outputs.uploadsBucket;
export const reportsBucket = outputs.reportsBucket;
export const modelsBucket = outputs.modelsBucket;
export const mediaDomain = outputs.mediaDomain;
export const mediaKeyPairId = outputs.mediaKeyPairId;
export const repositoryUrls = outputs.repositoryUrls;
export const kubeconfig = outputs.kubeconfig;
