export {
  ACME_SERVERS,
  Addons,
  type AddonsArgs,
  type ClusterIssuerName,
  INGRESS_NGINX_PORTS,
  LOAD_BALANCER_CLASS,
  NLB_ANNOTATIONS,
  needsDevicePlugin,
  POD_READINESS_GATE_LABEL,
} from "./addons.js";
export { CHARTS, type ChartSource, CLUSTER_AUTOSCALER_IMAGES, EXACT_SEMVER } from "./charts.js";
