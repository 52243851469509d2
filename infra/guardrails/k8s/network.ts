import type { PlanDocument, PlanResource } from "../../../stacks/plan/document.js";
import { asArray, at, findingsFor, type Guardrail, stackKey } from "../guardrail.js";
import {
  applicationNamespaces,
  type Json,
  nameOf,
  namespaceOf,
  objectsOfKind,
  podLabelsOf,
  selects,
  workloads,
} from "./objects.js";

/** Ingress class and ACME issuers of the add-ons (infra/k8s/names.ts). */
const INGRESS_CLASS = "nginx";
const STAGING_ACME = /acme-staging/;

export const k1PodSecurity: Guardrail = {
  id: "K1",
  title: "Application namespaces labelled pod-security.kubernetes.io/enforce: restricted",
  check({ plan }) {
    const { findings, fail } = findingsFor("K1");
    const namespaces = objectsOfKind(plan, "Namespace");
    for (const name of applicationNamespaces(plan)) {
      const namespace = namespaces.find((candidate) => nameOf(candidate) === name);
      if (!namespace) {
        fail(stackKey(plan), `application namespace ${name} is not declared by the platform`);
        continue;
      }
      const labels = (at(namespace.inputs, "metadata.labels") ?? {}) as Json;
      if (labels["pod-security.kubernetes.io/enforce"] !== "restricted") {
        fail(
          namespace,
          `Pod Security enforce level is ${String(labels["pod-security.kubernetes.io/enforce"] ?? "unset")}`,
        );
      }
    }
    return findings;
  },
};

const isDefaultDeny = (policy: Json): boolean => {
  const spec = (policy.spec ?? {}) as Json;
  const types = asArray(spec.policyTypes);
  // `podSelector: {}` selects every pod of the namespace.
  return (
    selects(spec.podSelector, {}) &&
    types.includes("Ingress") &&
    types.includes("Egress") &&
    asArray(spec.ingress).length === 0 &&
    asArray(spec.egress).length === 0
  );
};

const allowsDns = (policy: Json): boolean =>
  asArray(at(policy, "spec.egress")).some((rule) =>
    asArray((rule as Json).ports).some((port) => (port as Json).port === 53 && (port as Json).protocol === "UDP"),
  );

export const k8NetworkPolicies: Guardrail = {
  id: "K8",
  title: "Default-deny ingress + egress NetworkPolicy per application namespace, explicit allows selecting every pod",
  check({ plan }) {
    const { findings, fail } = findingsFor("K8");
    const policies = objectsOfKind(plan, "NetworkPolicy");
    for (const namespace of applicationNamespaces(plan)) {
      const own = policies.filter((policy) => namespaceOf(policy) === namespace);
      if (!own.some((policy) => isDefaultDeny(policy.inputs))) {
        fail(stackKey(plan), `namespace ${namespace} has no default-deny ingress + egress NetworkPolicy`);
      }
      const dns = own.filter((policy) => allowsDns(policy.inputs));
      for (const workload of workloads(plan).filter((candidate) => namespaceOf(candidate) === namespace)) {
        const labels = podLabelsOf(workload);
        const allows = own.filter(
          (policy) => !isDefaultDeny(policy.inputs) && selects(at(policy.inputs, "spec.podSelector"), labels),
        );
        if (allows.length === 0) fail(workload, "no NetworkPolicy allows anything for its pods");
        if (!dns.some((policy) => selects(at(policy.inputs, "spec.podSelector"), labels))) {
          fail(workload, "its pods may not resolve DNS (no egress to port 53/UDP)");
        }
      }
      for (const policy of own) {
        // An allow must name what it allows: a rule with no ports opens every port.
        for (const direction of ["ingress", "egress"] as const) {
          for (const rule of asArray(at(policy.inputs, `spec.${direction}`))) {
            if (asArray((rule as Json).ports).length === 0) {
              fail(policy, `an ${direction} rule allows every port`);
            }
          }
        }
      }
    }
    return findings;
  },
};

/**
 * The issuer an Ingress asks cert-manager for: a ClusterIssuer (`cert-manager.io/cluster-issuer`) or an Issuer of the
 * Ingress's namespace (`cert-manager.io/issuer`), with its object when the plan declares it.
 */
function issuerOf(
  plan: PlanDocument,
  ingress: PlanResource,
): { name?: string; label?: string; resource?: PlanResource } {
  const annotations = (at(ingress.inputs, "metadata.annotations") ?? {}) as Json;
  const clusterIssuer = annotations["cert-manager.io/cluster-issuer"];
  const issuer = annotations["cert-manager.io/issuer"];
  if (typeof clusterIssuer === "string") {
    return {
      name: clusterIssuer,
      label: `ClusterIssuer ${clusterIssuer}`,
      resource: objectsOfKind(plan, "ClusterIssuer").find((candidate) => nameOf(candidate) === clusterIssuer),
    };
  }
  if (typeof issuer === "string") {
    const namespace = namespaceOf(ingress);
    return {
      name: issuer,
      label: `Issuer ${namespace}/${issuer}`,
      resource: objectsOfKind(plan, "Issuer").find(
        (candidate) => nameOf(candidate) === issuer && namespaceOf(candidate) === namespace,
      ),
    };
  }
  return {};
}

export const k10Exposure: Guardrail = {
  id: "K10",
  title:
    "Only the ingress controller is exposed; Services are ClusterIP; the ingress serves TLS from a cert-manager ACME issuer",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("K10");
    for (const service of objectsOfKind(plan, "Service")) {
      const type = String(at(service.inputs, "spec.type") ?? "ClusterIP");
      if (type !== "ClusterIP") fail(service, `Service type ${type} exposes it outside the cluster`);
    }
    const ingresses = objectsOfKind(plan, "Ingress");
    if (ingresses.length === 0 && workloads(plan).length > 0) fail(stackKey(plan), "no Ingress for the API");
    for (const ingress of ingresses) {
      const spec = (ingress.inputs.spec ?? {}) as Json;
      if (spec.ingressClassName !== INGRESS_CLASS) {
        fail(ingress, `ingressClassName is ${String(spec.ingressClassName ?? "unset")}, not ${INGRESS_CLASS}`);
      }
      const tlsHosts = new Set(asArray(spec.tls).flatMap((tls) => asArray((tls as Json).hosts).map(String)));
      for (const rule of asArray(spec.rules)) {
        const host = (rule as Json).host;
        if (typeof host !== "string" || !tlsHosts.has(host))
          fail(ingress, `host ${String(host ?? "*")} is served without TLS`);
      }
      const issuer = issuerOf(plan, ingress);
      if (!issuer.name) {
        fail(
          ingress,
          "no cert-manager.io/cluster-issuer or issuer annotation: the certificate is not from cert-manager",
        );
      } else if (!issuer.resource) {
        fail(ingress, `${issuer.label} is not in the plan: nothing says it is an ACME issuer`);
      } else {
        if (at(issuer.resource.inputs, "spec.acme") === undefined) fail(ingress, `${issuer.label} is not ACME`);
        const server = String(at(issuer.resource.inputs, "spec.acme.server") ?? "");
        if (environment === "prod" && (STAGING_ACME.test(server) || /staging/.test(issuer.name))) {
          fail(ingress, `prod serves an untrusted staging certificate (${issuer.name})`);
        }
      }
      const paths = asArray(at(spec, "rules")).flatMap((rule) =>
        asArray(at(rule as Json, "http.paths")).map((path) => String((path as Json).path ?? "/")),
      );
      for (const path of paths) {
        if (path === "/" || "/metrics".startsWith(path) || path.startsWith("/metrics")) {
          fail(ingress, `path ${path} routes /metrics to the internet`);
        }
      }
    }
    return findings;
  },
};

export const networkGuardrails: Guardrail[] = [k1PodSecurity, k8NetworkPolicies, k10Exposure];
