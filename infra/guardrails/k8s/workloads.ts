import type { PlanDocument, PlanResource } from "../../../stacks/plan/document.js";
import { asArray, at, findingsFor, type Guardrail } from "../guardrail.js";
import {
  containersOf,
  envValue,
  isLongRunning,
  type Json,
  nameOf,
  namespaceOf,
  objectsOfKind,
  podLabelsOf,
  podSpecOf,
  preStopSeconds,
  selects,
  workloads,
} from "./objects.js";

/** The GPU node pool label and taint the detector must target (infra/aws/cluster.ts). */
const NODE_POOL_LABEL = "ndt.io/node-pool";
const GPU_RESOURCE = "nvidia.com/gpu";
/** The drain time a service uses when SHUTDOWN_TIMEOUT_MS is not set (apps/kit HttpConfig). */
const DEFAULT_DRAIN_SECONDS = 10;
/** Env names that hold credentials: these must come from a Secret. */
const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)$/;

const label = (ref: { name: string; init: boolean }) => `${ref.init ? "init container" : "container"} ${ref.name}`;

export const k2SecurityContext: Guardrail = {
  id: "K2",
  title:
    "Containers: non-root, non-zero UID, no privilege escalation, drop ALL, RuntimeDefault seccomp, read-only root",
  check({ plan }) {
    const { findings, fail } = findingsFor("K2");
    for (const workload of workloads(plan)) {
      const pod = (podSpecOf(workload).securityContext ?? {}) as Json;
      for (const ref of containersOf(workload)) {
        const own = (ref.container.securityContext ?? {}) as Json;
        const pick = (key: string) => (own[key] !== undefined ? own[key] : pod[key]);
        const problems: string[] = [];
        if (pick("runAsNonRoot") !== true) problems.push("runAsNonRoot is not true");
        const uid = pick("runAsUser");
        if (typeof uid !== "number" || uid === 0) problems.push("no non-zero runAsUser");
        if (own.allowPrivilegeEscalation !== false) problems.push("allowPrivilegeEscalation is not false");
        if (own.privileged === true) problems.push("privileged");
        if (!asArray(at(own, "capabilities.drop")).includes("ALL")) problems.push("capabilities.drop lacks ALL");
        const seccomp = at(own, "seccompProfile.type") ?? at(pod, "seccompProfile.type");
        if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost")
          problems.push("seccompProfile is not RuntimeDefault");
        if (own.readOnlyRootFilesystem !== true) problems.push("readOnlyRootFilesystem is not true");
        if (problems.length > 0) fail(workload, `${label(ref)}: ${problems.join(", ")}`);
      }
    }
    return findings;
  },
};

/** Workloads that belong on the GPU nodes: the DetectionWorker's, or any pod asking for the GPU pool or a GPU. */
function isGpuWorkload(workload: PlanResource): boolean {
  if (workload.parent?.startsWith("ndt:k8s:DetectionWorker::")) return true;
  const spec = podSpecOf(workload);
  const terms = asArray(
    at(spec, "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"),
  );
  const targetsGpuPool = terms.some((term) =>
    asArray((term as Json).matchExpressions).some(
      (expression) =>
        (expression as Json).key === NODE_POOL_LABEL && asArray((expression as Json).values).includes("gpu"),
    ),
  );
  const selectorGpu = at(spec, `nodeSelector.${NODE_POOL_LABEL}`) === "gpu";
  return targetsGpuPool || selectorGpu;
}

export const k3Resources: Guardrail = {
  id: "K3",
  title:
    "CPU and memory requests and a memory limit on every container; the detector requests a GPU and tolerates its taint",
  check({ plan }) {
    const { findings, fail } = findingsFor("K3");
    for (const workload of workloads(plan)) {
      for (const ref of containersOf(workload)) {
        const resources = (ref.container.resources ?? {}) as Json;
        const missing = ["requests.cpu", "requests.memory", "limits.memory"].filter(
          (path) => at(resources, path) === undefined,
        );
        if (missing.length > 0) fail(workload, `${label(ref)}: no ${missing.join(", ")}`);
      }
      if (!isGpuWorkload(workload)) continue;
      const main = containersOf(workload).filter((ref) => !ref.init);
      const gpus = (ref: { container: Json }) =>
        Number(((at(ref.container, "resources.limits") ?? {}) as Json)[GPU_RESOURCE] ?? 0);
      if (!main.some((ref) => gpus(ref) >= 1)) {
        fail(workload, `runs on the GPU pool without requesting ${GPU_RESOURCE}`);
      }
      const tolerates = asArray(podSpecOf(workload).tolerations).some(
        (toleration) => (toleration as Json).key === GPU_RESOURCE && (toleration as Json).effect === "NoSchedule",
      );
      if (!tolerates) fail(workload, `does not tolerate the ${GPU_RESOURCE}:NoSchedule taint`);
    }
    return findings;
  },
};

/** `repo:tag` or `repo@sha256:...`; a registry port (`host:5000/repo`) is not a tag. */
export function imageProblem(image: unknown): string | undefined {
  if (typeof image !== "string" || image === "") return "no image";
  if (/@sha256:[a-f0-9]{64}$/.test(image)) return undefined;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  const colon = lastSegment.lastIndexOf(":");
  if (colon < 0) return `image ${image} is untagged`;
  if (lastSegment.slice(colon + 1) === "latest") return `image ${image} uses the latest tag`;
  return undefined;
}

export const k4PinnedImages: Guardrail = {
  id: "K4",
  title: "No :latest or untagged images",
  check({ plan }) {
    const { findings, fail } = findingsFor("K4");
    for (const workload of workloads(plan)) {
      for (const ref of containersOf(workload)) {
        const problem = imageProblem(ref.container.image);
        if (problem) fail(workload, `${label(ref)}: ${problem}`);
      }
    }
    return findings;
  },
};

export const k5ServiceAccounts: Guardrail = {
  id: "K5",
  title:
    "automountServiceAccountToken false unless the pod needs the API; one ServiceAccount per service; no cluster-wide rights",
  check({ plan }) {
    const { findings, fail } = findingsFor("K5");
    const accounts = objectsOfKind(plan, "ServiceAccount");
    const owners = new Map<string, string>();
    for (const workload of workloads(plan)) {
      const spec = podSpecOf(workload);
      const namespace = namespaceOf(workload);
      const accountName = typeof spec.serviceAccountName === "string" ? spec.serviceAccountName : "default";
      if (accountName === "default") fail(workload, "runs as the namespace's default ServiceAccount");
      const account = accounts.find((sa) => nameOf(sa) === accountName && namespaceOf(sa) === namespace);
      if (accountName !== "default" && !account) fail(workload, `ServiceAccount ${accountName} is not in the plan`);
      const needsApi = at(podTemplateAnnotations(workload), "ndt.io/needs-kubernetes-api") === "true";
      const automount = spec.automountServiceAccountToken ?? account?.inputs.automountServiceAccountToken;
      if (automount !== false && !needsApi) fail(workload, "mounts a ServiceAccount token it does not need");
      const key = `${namespace}/${accountName}`;
      const owner = owners.get(key);
      if (owner && isLongRunning(workload)) fail(workload, `shares ServiceAccount ${accountName} with ${owner}`);
      else if (isLongRunning(workload)) owners.set(key, nameOf(workload));
    }
    // Applications get no cluster-wide rights: no ClusterRoleBinding names a ServiceAccount of theirs.
    const appNamespaces = new Set(workloads(plan).map(namespaceOf));
    for (const binding of objectsOfKind(plan, "ClusterRoleBinding")) {
      for (const subject of asArray(binding.inputs.subjects)) {
        const { kind, namespace } = subject as Json;
        if (kind === "ServiceAccount" && appNamespaces.has(String(namespace))) {
          fail(
            binding,
            `gives cluster-wide rights to ServiceAccount ${String(namespace)}/${String((subject as Json).name)}`,
          );
        }
      }
    }
    return findings;
  },
};

function podTemplateAnnotations(workload: PlanResource): Json {
  const kind = String(workload.inputs.kind);
  const path =
    kind === "CronJob" ? "spec.jobTemplate.spec.template.metadata.annotations" : "spec.template.metadata.annotations";
  return (at(workload.inputs, path) ?? {}) as Json;
}

export const k6Probes: Guardrail = {
  id: "K6",
  title: "Readiness and liveness probes differ; liveness checks the process only; the detector has a startup probe",
  check({ plan }) {
    const { findings, fail } = findingsFor("K6");
    for (const workload of workloads(plan).filter(isLongRunning)) {
      for (const ref of containersOf(workload).filter((container) => !container.init)) {
        const { livenessProbe, readinessProbe, startupProbe } = ref.container;
        if (!livenessProbe) fail(workload, `${label(ref)}: no liveness probe`);
        if (!readinessProbe) fail(workload, `${label(ref)}: no readiness probe`);
        if (livenessProbe && readinessProbe && JSON.stringify(livenessProbe) === JSON.stringify(readinessProbe)) {
          fail(workload, `${label(ref)}: liveness and readiness probes are the same`);
        }
        const livenessPath = at(livenessProbe ?? null, "httpGet.path");
        const readinessPath = at(readinessProbe ?? null, "httpGet.path");
        if (livenessPath !== undefined && (livenessPath === readinessPath || livenessPath === "/readyz")) {
          fail(workload, `${label(ref)}: liveness checks ${String(livenessPath)}, which asks the dependencies`);
        }
        if (isGpuWorkload(workload) && !startupProbe)
          fail(workload, `${label(ref)}: no startup probe for the model load`);
      }
    }
    return findings;
  },
};

/** Replicas a Deployment never drops below: its HPA's or ScaledObject's minimum, else spec.replicas (default 1). */
function minimumReplicas(plan: PlanDocument, workload: PlanResource): number {
  const namespace = namespaceOf(workload);
  const name = nameOf(workload);
  const targets = (scaler: PlanResource) =>
    namespaceOf(scaler) === namespace && at(scaler.inputs, "spec.scaleTargetRef.name") === name;
  const hpa = objectsOfKind(plan, "HorizontalPodAutoscaler").find(targets);
  if (hpa) return Number(at(hpa.inputs, "spec.minReplicas") ?? 1);
  const scaled = objectsOfKind(plan, "ScaledObject").find(targets);
  if (scaled) return Number(at(scaled.inputs, "spec.minReplicaCount") ?? 0);
  return Number(at(workload.inputs, "spec.replicas") ?? 1);
}

function allowsDisruption(budget: PlanResource, minimum: number): boolean {
  const maxUnavailable = at(budget.inputs, "spec.maxUnavailable");
  const minAvailable = at(budget.inputs, "spec.minAvailable");
  if (typeof maxUnavailable === "number") return maxUnavailable >= 1;
  if (typeof maxUnavailable === "string") return Number.parseInt(maxUnavailable, 10) > 0;
  if (typeof minAvailable === "number") return minAvailable < minimum;
  if (typeof minAvailable === "string") return Number.parseInt(minAvailable, 10) < 100;
  return false;
}

export const k7Availability: Guardrail = {
  id: "K7",
  title: "prod: ≥ 2 replicas (HPA minimum ≥ 2) spread across zones; every Deployment has a PDB allowing ≥ 1 disruption",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("K7");
    if (environment !== "prod") return findings; // GUARDRAILS.md: a prod line
    for (const workload of objectsOfKind(plan, "Deployment")) {
      const minimum = minimumReplicas(plan, workload);
      if (minimum < 2) fail(workload, `runs as few as ${minimum} replica(s) in prod`);
      const spread = asArray(podSpecOf(workload).topologySpreadConstraints).some(
        (constraint) => (constraint as Json).topologyKey === "topology.kubernetes.io/zone",
      );
      if (!spread) fail(workload, "no topology spread across zones");
      const budgets = objectsOfKind(plan, "PodDisruptionBudget").filter(
        (budget) =>
          namespaceOf(budget) === namespaceOf(workload) &&
          selects(at(budget.inputs, "spec.selector"), podLabelsOf(workload)),
      );
      if (budgets.length === 0) fail(workload, "no PodDisruptionBudget");
      else if (!budgets.some((budget) => allowsDisruption(budget, minimum))) {
        fail(workload, "its PodDisruptionBudget allows no disruption (node drains would block)");
      }
    }
    return findings;
  },
};

export const k9GracefulStop: Guardrail = {
  id: "K9",
  title: "preStop pause ≥ 5 s and terminationGracePeriodSeconds larger than preStop + drain time",
  check({ plan }) {
    const { findings, fail } = findingsFor("K9");
    for (const workload of workloads(plan).filter(isLongRunning)) {
      const grace = Number(podSpecOf(workload).terminationGracePeriodSeconds ?? 30);
      for (const ref of containersOf(workload).filter((container) => !container.init)) {
        const pause = preStopSeconds(ref.container);
        if (pause < 5) fail(workload, `${label(ref)}: preStop pause ${pause} s is under 5 s`);
        const drainMs = envValue(ref.container, "SHUTDOWN_TIMEOUT_MS");
        const drain = drainMs === undefined ? DEFAULT_DRAIN_SECONDS : Number(drainMs) / 1000;
        if (!(grace > pause + drain)) {
          fail(workload, `${label(ref)}: grace period ${grace} s is not above preStop ${pause} s + drain ${drain} s`);
        }
      }
    }
    return findings;
  },
};

export const k11Secrets: Guardrail = {
  id: "K11",
  title: "Secrets reach pods from Kubernetes Secrets synced from AWS Secrets Manager, never ConfigMaps or literals",
  check({ plan }) {
    const { findings, fail } = findingsFor("K11");
    const synced = new Set(
      objectsOfKind(plan, "ExternalSecret").map(
        (secret) => `${namespaceOf(secret)}/${String(at(secret.inputs, "spec.target.name") ?? nameOf(secret))}`,
      ),
    );
    const namespaces = new Set(workloads(plan).map(namespaceOf));
    for (const workload of workloads(plan)) {
      const namespace = namespaceOf(workload);
      for (const ref of containersOf(workload)) {
        for (const entry of asArray(ref.container.env) as Json[]) {
          const name = String(entry.name);
          const secretRef = at(entry, "valueFrom.secretKeyRef.name");
          if (secretRef !== undefined && !synced.has(`${namespace}/${String(secretRef)}`)) {
            fail(workload, `${label(ref)}: ${name} reads Secret ${String(secretRef)}, which no ExternalSecret syncs`);
          }
          if (!SECRET_NAME.test(name)) continue;
          if (entry.value !== undefined) fail(workload, `${label(ref)}: ${name} is a literal value`);
          else if (at(entry, "valueFrom.configMapKeyRef") !== undefined) {
            fail(workload, `${label(ref)}: ${name} comes from a ConfigMap`);
          }
        }
        for (const source of asArray(ref.container.envFrom) as Json[]) {
          const secretRef = at(source, "secretRef.name");
          if (secretRef !== undefined && !synced.has(`${namespace}/${String(secretRef)}`)) {
            fail(workload, `${label(ref)}: envFrom Secret ${String(secretRef)} is not synced by an ExternalSecret`);
          }
        }
      }
    }
    // A Secret written by Pulumi in an application namespace would carry its value through state and config.
    for (const secret of objectsOfKind(plan, "Secret")) {
      if (namespaces.has(namespaceOf(secret))) fail(secret, "a literal Secret in an application namespace");
    }
    for (const configMap of objectsOfKind(plan, "ConfigMap")) {
      if (!namespaces.has(namespaceOf(configMap))) continue;
      const keys = Object.keys((configMap.inputs.data ?? {}) as Json).filter((key) =>
        SECRET_NAME.test(key.toUpperCase()),
      );
      if (keys.length > 0) fail(configMap, `holds secret-looking keys: ${keys.join(", ")}`);
    }
    return findings;
  },
};

export const workloadGuardrails: Guardrail[] = [
  k2SecurityContext,
  k3Resources,
  k4PinnedImages,
  k5ServiceAccounts,
  k6Probes,
  k7Availability,
  k9GracefulStop,
  k11Secrets,
];
