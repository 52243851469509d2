import type { PlanDocument, PlanResource } from "../../../stacks/plan/document.js";
import { asArray, at, findingsFor, type Guardrail, hasPasswordInUrl } from "../guardrail.js";
import {
  budgetAllowsDisruption,
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
import { asJson, checkReleaseAvailability, checkReleaseSecrets } from "./releases.js";

/** The GPU node pool label and taint the detector must target (infra/aws/cluster.ts). */
const NODE_POOL_LABEL = "ndt.io/node-pool";
const GPU_RESOURCE = "nvidia.com/gpu";
/** The drain time a service uses when SHUTDOWN_TIMEOUT_MS is not set (apps/kit HttpConfig). */
const DEFAULT_DRAIN_SECONDS = 10;
/** Env names that hold credentials: these must come from a Secret. */
const SECRET_NAME = /PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|(^|_)KEY$/;
/**
 * Names that say where a credential is or what it is called, not the credential (`JWT_SECRET_ARN`, `TOKEN_TTL_SECONDS`,
 * `DATABASE_PASSWORD_FILE`), and keys that name objects, not secrets (`MODEL_KEY`: the model's S3 object key).
 */
const NOT_A_CREDENTIAL =
  /_(NAME|ARN|ID|FILE|PATH|DIR|URL|URI|ENDPOINT|TTL|TTL_SECONDS|SECONDS|MS)$|(^|_)(MODEL|OBJECT|S3|CACHE|ROUTING|PARTITION|SORT|IDEMPOTENCY|PUBLIC)_KEY$/;
/** An env, ConfigMap key or object name (`files-credentials`) that names a credential. */
const isCredentialName = (name: string): boolean => {
  const normalized = name.toUpperCase().replace(/[-.]/g, "_");
  return SECRET_NAME.test(normalized) && !NOT_A_CREDENTIAL.test(normalized);
};
/** The path the services serve for liveness: it answers while the process runs and asks no dependency (apps/kit). */
const LIVENESS_PATH = "/healthz";
/** Probe fields that say when and how often a probe runs, not what it checks. */
const PROBE_TIMING = new Set([
  "initialDelaySeconds",
  "periodSeconds",
  "timeoutSeconds",
  "successThreshold",
  "failureThreshold",
  "terminationGracePeriodSeconds",
]);
/** Commands that reach the network: an exec probe running one may be asking a dependency. */
const NETWORK_COMMAND =
  /:\/\/|\b(curl|wget|nc|ncat|netcat|telnet|socat|pg_isready|psql|redis-cli|valkey-cli|rabbitmqctl|rabbitmq-diagnostics|grpc_health_probe|aws)\b/;
const ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone";

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);
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
        if (isObject(livenessProbe) && isObject(readinessProbe) && checkOf(livenessProbe) === checkOf(readinessProbe)) {
          fail(workload, `${label(ref)}: liveness and readiness probes check the same thing`);
        }
        const problem = isObject(livenessProbe) ? livenessProblem(livenessProbe) : undefined;
        if (problem) fail(workload, `${label(ref)}: ${problem}`);
        if (isGpuWorkload(workload) && !startupProbe)
          fail(workload, `${label(ref)}: no startup probe for the model load`);
      }
    }
    return findings;
  },
};

/** What a probe checks, without when and how often: two probes with the same check differ only in timing. */
function checkOf(probe: Json): string {
  const sorted = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(sorted)
      : isObject(value)
        ? Object.fromEntries(
            Object.keys(value)
              .sort()
              .map((key) => [key, sorted(value[key])]),
          )
        : value;
  return JSON.stringify(sorted(Object.fromEntries(Object.entries(probe).filter(([key]) => !PROBE_TIMING.has(key)))));
}

/**
 * Why a liveness probe may check more than the process, or undefined when it checks the process only: the services'
 * `/healthz` on their own pod, a TCP connect to their own port, or a command that does not reach the network. A failed
 * liveness probe restarts the container, so one that asks a dependency restarts every pod when that dependency blinks.
 */
function livenessProblem(probe: Json): string | undefined {
  if (isObject(probe.httpGet)) {
    const { host, path } = probe.httpGet;
    if (host !== undefined) return `liveness asks another host (${String(host)})`;
    if (path !== LIVENESS_PATH) return `liveness checks ${String(path ?? "/")}, not the process-only ${LIVENESS_PATH}`;
    return undefined;
  }
  if (isObject(probe.tcpSocket)) {
    const { host } = probe.tcpSocket;
    return host === undefined ? undefined : `liveness connects to another host (${String(host)})`;
  }
  if (isObject(probe.exec)) {
    const command = asArray(probe.exec.command).map(String).join(" ");
    return NETWORK_COMMAND.test(command) ? `liveness runs \`${command}\`, which reaches the network` : undefined;
  }
  // gRPC health services commonly report their dependencies' state.
  if (isObject(probe.grpc)) return `liveness is a gRPC health check, not the process-only ${LIVENESS_PATH}`;
  return "liveness probe has no handler";
}

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

export const k7Availability: Guardrail = {
  id: "K7",
  title:
    "prod: ≥ 2 replicas (HPA minimum ≥ 2) spread across zones; every Deployment has a PDB allowing ≥ 1 disruption; Helm add-ons likewise, bar documented singletons",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("K7");
    if (environment !== "prod") return findings; // GUARDRAILS.md: a prod line
    for (const workload of objectsOfKind(plan, "Deployment")) {
      const minimum = minimumReplicas(plan, workload);
      if (minimum < 2) fail(workload, `runs as few as ${minimum} replica(s) in prod`);
      // A spread counts only over the pods its selector picks: it must pick this workload's own pods. Whether it may
      // yield when zones run out (`whenUnsatisfiable`) is left to the workload: the detector does, on purpose.
      const labels = podLabelsOf(workload);
      const spread = asArray(podSpecOf(workload).topologySpreadConstraints).some(
        (constraint) =>
          isObject(constraint) &&
          constraint.topologyKey === ZONE_TOPOLOGY_KEY &&
          Object.keys((at(constraint, "labelSelector.matchLabels") ?? {}) as Json).length > 0 &&
          selects(constraint.labelSelector, labels),
      );
      if (!spread) fail(workload, "no topology spread across zones that selects its own pods");
      const budgets = objectsOfKind(plan, "PodDisruptionBudget").filter(
        (budget) =>
          namespaceOf(budget) === namespaceOf(workload) &&
          selects(at(budget.inputs, "spec.selector"), podLabelsOf(workload)),
      );
      if (budgets.length === 0) fail(workload, "no PodDisruptionBudget");
      else if (!budgets.some((budget) => budgetAllowsDisruption((budget.inputs.spec ?? {}) as Json, minimum))) {
        fail(workload, "its PodDisruptionBudget allows no disruption (node drains would block)");
      }
    }
    // The charts' workloads are not in the plan: their values say what they run.
    checkReleaseAvailability(plan, fail);
    return findings;
  },
};

export const k9GracefulStop: Guardrail = {
  id: "K9",
  title:
    "preStop pause ≥ 5 s and terminationGracePeriodSeconds larger than preStop + drain time (+ the detector's " +
    "inference stop time)",
  check({ plan }) {
    const { findings, fail } = findingsFor("K9");
    for (const workload of workloads(plan).filter(isLongRunning)) {
      const grace = Number(podSpecOf(workload).terminationGracePeriodSeconds ?? 30);
      for (const ref of containersOf(workload).filter((container) => !container.init)) {
        const pause = preStopSeconds(ref.container);
        if (pause < 5) fail(workload, `${label(ref)}: preStop pause ${pause} s is under 5 s`);
        const drainMs = envValue(ref.container, "SHUTDOWN_TIMEOUT_MS");
        const drain = drainMs === undefined ? DEFAULT_DRAIN_SECONDS : Number(drainMs) / 1000;
        // the detector then waits this long for running batches (apps/detector's INFERENCE_STOP_TIMEOUT_MS)
        const batchStopMs = envValue(ref.container, "INFERENCE_STOP_TIMEOUT_MS");
        const batchStop = batchStopMs === undefined ? 0 : Number(batchStopMs) / 1000;
        if (!(grace > pause + drain + batchStop)) {
          const after = batchStop > 0 ? ` + inference stop ${batchStop} s` : "";
          fail(
            workload,
            `${label(ref)}: grace period ${grace} s is not above preStop ${pause} s + drain ${drain} s${after}`,
          );
        }
      }
    }
    return findings;
  },
};

/** Keys of a ConfigMap that hold a secret: named as a credential, or a URL with a password in it. */
function secretKeysOf(configMap: PlanResource): { named: string[]; inUrls: string[] } {
  const data = Object.entries((configMap.inputs.data ?? {}) as Json);
  return {
    named: data.filter(([key]) => isCredentialName(key)).map(([key]) => key),
    inUrls: data.filter(([, value]) => typeof value === "string" && hasPasswordInUrl(value)).map(([key]) => key),
  };
}

/** A Secret whose `data` or `stringData` the plan carries: as entries, or as a whole marked "[secret]". */
function writesData(secret: PlanResource): boolean {
  return [secret.inputs.data, secret.inputs.stringData].some(
    (data) => typeof data === "string" || Object.keys(asJson(data)).length > 0,
  );
}

export const k11Secrets: Guardrail = {
  id: "K11",
  title:
    "Secrets reach pods (env, volumes, charts) from Kubernetes Secrets synced from AWS Secrets Manager, never ConfigMaps, literals, chart values or Secrets Pulumi writes",
  check({ plan }) {
    const { findings, fail } = findingsFor("K11");
    const synced = new Set(
      objectsOfKind(plan, "ExternalSecret").map(
        (secret) => `${namespaceOf(secret)}/${String(at(secret.inputs, "spec.target.name") ?? nameOf(secret))}`,
      ),
    );
    const namespaces = new Set(workloads(plan).map(namespaceOf));
    const secretKeys = new Map(
      objectsOfKind(plan, "ConfigMap").map((configMap) => [configMap, secretKeysOf(configMap)]),
    );
    const configMapsHoldingSecrets = new Set(
      [...secretKeys]
        .filter(([, keys]) => keys.named.length > 0 || keys.inUrls.length > 0)
        .map(([configMap]) => `${namespaceOf(configMap)}/${nameOf(configMap)}`),
    );
    for (const workload of workloads(plan)) {
      const namespace = namespaceOf(workload);
      for (const ref of containersOf(workload)) {
        for (const entry of asArray(ref.container.env) as Json[]) {
          const name = String(entry.name);
          const secretRef = at(entry, "valueFrom.secretKeyRef.name");
          if (secretRef !== undefined && !synced.has(`${namespace}/${String(secretRef)}`)) {
            fail(workload, `${label(ref)}: ${name} reads Secret ${String(secretRef)}, which no ExternalSecret syncs`);
          }
          if (typeof entry.value === "string" && hasPasswordInUrl(entry.value)) {
            fail(workload, `${label(ref)}: ${name} is a literal URL with a password in it`);
          }
          if (!isCredentialName(name)) continue;
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
      // Mounted files are the other way in: a volume of a Secret (or a projected one) and of a ConfigMap.
      for (const volume of asArray(podSpecOf(workload).volumes).filter(isObject)) {
        const volumeName = String(volume.name);
        const sources = [volume, ...asArray(at(volume, "projected.sources")).filter(isObject)];
        for (const source of sources) {
          const secret = at(source, "secret.secretName") ?? at(source, "secret.name");
          if (secret !== undefined && !synced.has(`${namespace}/${String(secret)}`)) {
            fail(workload, `volume ${volumeName} mounts Secret ${String(secret)}, which no ExternalSecret syncs`);
          }
          const configMap = at(source, "configMap.name");
          if (
            configMap !== undefined &&
            (isCredentialName(String(configMap)) || configMapsHoldingSecrets.has(`${namespace}/${String(configMap)}`))
          ) {
            fail(workload, `volume ${volumeName} mounts ConfigMap ${String(configMap)}, which holds secrets`);
          }
        }
      }
    }
    // A Secret written by Pulumi carries its value through state and config: none in an application namespace, and
    // none with data anywhere (an add-on's credentials are synced like the services').
    for (const secret of objectsOfKind(plan, "Secret")) {
      if (namespaces.has(namespaceOf(secret))) fail(secret, "a literal Secret in an application namespace");
      else if (writesData(secret)) {
        fail(secret, "Pulumi writes this Secret's data; sync it from Secrets Manager with an ExternalSecret");
      }
    }
    checkReleaseSecrets(plan, synced, fail);
    for (const [configMap, { named, inUrls }] of secretKeys) {
      if (!namespaces.has(namespaceOf(configMap))) continue;
      if (named.length > 0) fail(configMap, `holds secret-looking keys: ${named.join(", ")}`);
      if (inUrls.length > 0) fail(configMap, `holds URLs with a password in them: ${inUrls.join(", ")}`);
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
