import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { PART_OF, PART_OF_LABEL } from "./names.js";

export interface AppNamespaceArgs {
  /** The cluster's Kubernetes version, e.g. "1.33": the Pod Security profile is pinned to it. */
  kubernetesVersion: string;
  /**
   * The Kubernetes group (an EKS access entry's `kubernetesGroups`) that may read, not change, this namespace.
   * @default "ndt:viewers"
   */
  viewerGroup?: string;
}

/**
 * An application namespace: Pod Security `restricted` enforced (K1), a default-deny NetworkPolicy for ingress and
 * egress that selects every pod plus the one allow every pod needs, DNS (K8), and least-privilege RBAC: a read-only
 * Role bound to a viewer group, no ClusterRoleBinding, and no rights at all for the applications themselves (their
 * service accounts have no token mounted). Each workload adds its own explicit allows.
 *
 * Cost: nothing (Kubernetes objects only).
 */
export class AppNamespace extends pulumi.ComponentResource {
  readonly name: string;
  readonly namespace: k8s.core.v1.Namespace;

  constructor(name: string, args: AppNamespaceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:AppNamespace", name, {}, opts);
    this.name = name;
    const labels = { [PART_OF_LABEL]: PART_OF, "app.kubernetes.io/managed-by": "pulumi" };
    const child = { parent: this };
    const version = `v${args.kubernetesVersion}`;

    this.namespace = createNamespace();
    const inNamespace = { ...child, dependsOn: [this.namespace] };
    createDefaultDeny();
    createDnsAllow();
    createViewerAccess();
    this.registerOutputs({ name });

    function createNamespace(): k8s.core.v1.Namespace {
      return new k8s.core.v1.Namespace(
        `${name}-namespace`,
        {
          metadata: {
            name,
            labels: {
              ...labels,
              "pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": version,
              "pod-security.kubernetes.io/audit": "restricted",
              "pod-security.kubernetes.io/audit-version": version,
              "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/warn-version": version,
            },
          },
        },
        child,
      );
    }

    function createDefaultDeny(): k8s.networking.v1.NetworkPolicy {
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-default-deny`,
        {
          metadata: { name: "default-deny", namespace: name, labels },
          // Selects every pod; lists no rule: nothing in, nothing out, unless another policy allows it.
          spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
        },
        inNamespace,
      );
    }

    function createDnsAllow(): k8s.networking.v1.NetworkPolicy {
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-allow-dns`,
        {
          metadata: { name: "allow-dns", namespace: name, labels },
          spec: {
            podSelector: {},
            policyTypes: ["Egress"],
            egress: [
              {
                to: [
                  {
                    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
                    podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
                  },
                ],
                ports: [
                  { protocol: "UDP", port: 53 },
                  { protocol: "TCP", port: 53 },
                ],
              },
            ],
          },
        },
        inNamespace,
      );
    }

    function createViewerAccess(): void {
      const role = new k8s.rbac.v1.Role(
        `${name}-viewer`,
        {
          metadata: { name: "viewer", namespace: name, labels },
          // Read what runs and why it fails; no Secrets, no exec, no writes.
          rules: [
            {
              apiGroups: [""],
              resources: ["pods", "pods/log", "services", "endpoints", "events", "serviceaccounts"],
              verbs: ["get", "list", "watch"],
            },
            {
              apiGroups: ["apps", "batch", "autoscaling", "policy", "networking.k8s.io"],
              resources: [
                "deployments",
                "replicasets",
                "jobs",
                "horizontalpodautoscalers",
                "poddisruptionbudgets",
                "networkpolicies",
                "ingresses",
              ],
              verbs: ["get", "list", "watch"],
            },
          ],
        },
        inNamespace,
      );
      new k8s.rbac.v1.RoleBinding(
        `${name}-viewer`,
        {
          metadata: { name: "viewer", namespace: name, labels },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "viewer" },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: args.viewerGroup ?? "ndt:viewers" }],
        },
        { ...inNamespace, dependsOn: [role] },
      );
    }
  }
}
