/**
 * Names the Kubernetes side of the platform shares between its parts: the application components (infra/k8s), the
 * cluster add-ons (infra/k8s/addons) and observability (infra/k8s/observability). One place, so a rename cannot
 * leave a NetworkPolicy selecting a namespace that no longer exists.
 */

/** The namespace every application workload (services, detector, migrations) runs in. */
export const APP_NAMESPACE = "ndt";

/** `ingressClassName` of the ingress-nginx controller (add-ons). */
export const INGRESS_CLASS = "nginx";
/** Where the ingress-nginx controller runs: the only namespace allowed to reach the gateway. */
export const INGRESS_NAMESPACE = "ingress-nginx";
/** Where kube-prometheus-stack runs: the only namespace allowed to scrape the services' metrics ports. */
export const MONITORING_NAMESPACE = "monitoring";
/** The label kube-prometheus-stack's Prometheus selects ServiceMonitors by (its Helm release name). */
export const SERVICE_MONITOR_LABELS = { release: "kube-prometheus-stack" } as const;

/** cert-manager ACME ClusterIssuers (add-ons): Let's Encrypt staging in dev, production in prod. */
export const CLUSTER_ISSUERS = { dev: "letsencrypt-staging", prod: "letsencrypt-production" } as const;
/** The External Secrets Operator ClusterSecretStore backed by AWS Secrets Manager (add-ons). */
export const CLUSTER_SECRET_STORE = "aws-secrets-manager";

/** The label every platform object carries, and the one pod selectors use. */
export const APP_LABEL = "app.kubernetes.io/name";
export const PART_OF_LABEL = "app.kubernetes.io/part-of";
export const PART_OF = "ndt-platform";

/** Labels of one workload; `selector` is the subset that never changes (Deployment selectors are immutable). */
export function labelsFor(
  app: string,
  component = "service",
): { labels: Record<string, string>; selector: Record<string, string> } {
  return {
    selector: { [APP_LABEL]: app },
    labels: {
      [APP_LABEL]: app,
      "app.kubernetes.io/component": component,
      [PART_OF_LABEL]: PART_OF,
      "app.kubernetes.io/managed-by": "pulumi",
    },
  };
}
