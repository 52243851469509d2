import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { PUBLIC_PATHS } from "../../stacks/topology.js";
import { INGRESS_CLASS, labelsFor } from "./names.js";

export interface ApiIngressArgs {
  namespace: string;
  /** The API's public host name (config domain.apiHost). */
  host: string;
  /** The cert-manager ACME ClusterIssuer: `letsencrypt-staging` (dev) or `letsencrypt-production` (prod). */
  clusterIssuer: string;
  /** The public service (the gateway) and its port. */
  service: { name: string; port: number };
  /**
   * Largest request body the edge accepts: the uploads limit (CONTRACTS.md: 50 MiB) plus headroom.
   * @default "55m"
   */
  maxBodySize?: string;
}

/**
 * One HTTPS host for the API on ingress-nginx (class `nginx`), routed to the gateway: the certificate comes from a
 * cert-manager ACME ClusterIssuer (the `cert-manager.io/cluster-issuer` annotation makes cert-manager's
 * ingress-shim issue it into `api-tls`), HTTP redirects to HTTPS, and only PUBLIC_PATHS are routed.
 *
 * Cost: nothing itself; the controller's NLB (~$18/month + LCUs) belongs to the add-ons.
 */
export class ApiIngress extends pulumi.ComponentResource {
  readonly ingress: k8s.networking.v1.Ingress;

  constructor(name: string, args: ApiIngressArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:ApiIngress", name, {}, opts);
    const { labels } = labelsFor(args.service.name, "ingress");
    this.ingress = new k8s.networking.v1.Ingress(
      `${name}-ingress`,
      {
        metadata: {
          name: "api",
          namespace: args.namespace,
          labels,
          annotations: {
            "cert-manager.io/cluster-issuer": args.clusterIssuer,
            "nginx.ingress.kubernetes.io/ssl-redirect": "true",
            "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
            "nginx.ingress.kubernetes.io/proxy-body-size": args.maxBodySize ?? "55m",
            // Uploads are streamed through to the gateway, not buffered on the controller's disk.
            "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
            // Server-sent events (inspection progress) stay open.
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
          },
        },
        spec: {
          ingressClassName: INGRESS_CLASS,
          tls: [{ hosts: [args.host], secretName: "api-tls" }],
          rules: [
            {
              host: args.host,
              http: {
                paths: PUBLIC_PATHS.map((path) => ({
                  path,
                  pathType: "Prefix",
                  backend: { service: { name: args.service.name, port: { number: args.service.port } } },
                })),
              },
            },
          ],
        },
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
