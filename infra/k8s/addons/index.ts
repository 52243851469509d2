export {
  ACME_SERVERS,
  Addons,
  type AddonsArgs,
  type ClusterIssuerName,
  NLB_ANNOTATIONS,
  needsDevicePlugin,
} from "./addons.js";
export { CHARTS, type ChartSource, CLUSTER_AUTOSCALER_IMAGES, EXACT_SEMVER } from "./charts.js";
