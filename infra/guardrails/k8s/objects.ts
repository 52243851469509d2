import type { PlanDocument, PlanResource, PlanValue } from "../../../stacks/plan/document.js";
import { asArray, at } from "../guardrail.js";

/**
 * Reading Kubernetes objects out of the plan: each is a resource whose inputs are the full object (apiVersion, kind,
 * metadata, spec), with type `kubernetes:<group/version>:<Kind>` (CONTRACTS.md §2).
 */

export type Json = { [key: string]: PlanValue };

/** Kubernetes objects of the plan; Helm releases and other provider-level resources carry no `kind`. */
export function kubernetesObjects(plan: PlanDocument): PlanResource[] {
  return plan.resources.filter(
    (resource) =>
      resource.type.startsWith("kubernetes:") &&
      typeof resource.inputs.apiVersion === "string" &&
      typeof resource.inputs.kind === "string",
  );
}

export function objectsOfKind(plan: PlanDocument, kind: string): PlanResource[] {
  return kubernetesObjects(plan).filter((resource) => resource.inputs.kind === kind);
}

export const nameOf = (resource: PlanResource): string => String(at(resource.inputs, "metadata.name") ?? "");
export const namespaceOf = (resource: PlanResource): string =>
  String(at(resource.inputs, "metadata.namespace") ?? "default");

/** Kinds that run pods, with where their pod template lives. */
const POD_TEMPLATES: Record<string, string> = {
  Deployment: "spec.template",
  StatefulSet: "spec.template",
  DaemonSet: "spec.template",
  Job: "spec.template",
  CronJob: "spec.jobTemplate.spec.template",
  Pod: "",
};

/** Every workload the plan deploys (Helm charts' workloads are the charts' own; they are not in the plan). */
export function workloads(plan: PlanDocument): PlanResource[] {
  return kubernetesObjects(plan).filter((resource) => String(resource.inputs.kind) in POD_TEMPLATES);
}

export const isLongRunning = (workload: PlanResource): boolean =>
  ["Deployment", "StatefulSet", "DaemonSet"].includes(String(workload.inputs.kind));

export function podTemplateOf(workload: PlanResource): Json {
  const path = POD_TEMPLATES[String(workload.inputs.kind)] ?? "spec.template";
  const template = path === "" ? workload.inputs : at(workload.inputs, path);
  return (template && typeof template === "object" && !Array.isArray(template) ? template : {}) as Json;
}

export function podSpecOf(workload: PlanResource): Json {
  const spec = podTemplateOf(workload).spec;
  return (spec && typeof spec === "object" && !Array.isArray(spec) ? spec : {}) as Json;
}

export function podLabelsOf(workload: PlanResource): Record<string, string> {
  return (at(podTemplateOf(workload), "metadata.labels") ?? {}) as Record<string, string>;
}

export interface ContainerRef {
  container: Json;
  name: string;
  init: boolean;
}

export function containersOf(workload: PlanResource): ContainerRef[] {
  const spec = podSpecOf(workload);
  const list = (key: string, init: boolean): ContainerRef[] =>
    asArray(spec[key]).map((container) => ({
      container: container as Json,
      name: String((container as Json).name ?? "?"),
      init,
    }));
  return [...list("initContainers", true), ...list("containers", false)];
}

/** Does a `matchLabels` selector select pods with these labels? (`{}` selects every pod.) */
export function selects(selector: PlanValue | undefined, labels: Record<string, string>): boolean {
  if (!selector || typeof selector !== "object" || Array.isArray(selector)) return false;
  const matchLabels = (selector.matchLabels ?? {}) as Record<string, string>;
  const expressions = asArray(selector.matchExpressions);
  if (expressions.length > 0) return false; // not used by the platform: read as "not proven to select"
  return Object.entries(matchLabels).every(([key, value]) => labels[key] === value);
}

/**
 * Whether a PodDisruptionBudget's spec lets a node drain evict one of `replicas` pods: `maxUnavailable` ≥ 1 (or a
 * non-zero percentage), or `minAvailable` below the replicas (or below 100%).
 */
export function budgetAllowsDisruption(spec: Json, replicas: number): boolean {
  const { maxUnavailable, minAvailable } = spec;
  if (typeof maxUnavailable === "number") return maxUnavailable >= 1;
  if (typeof maxUnavailable === "string") return Number.parseInt(maxUnavailable, 10) > 0;
  if (typeof minAvailable === "number") return minAvailable < replicas;
  if (typeof minAvailable === "string") return Number.parseInt(minAvailable, 10) < 100;
  return false;
}

/** `"5s"`-free integers in seconds from a preStop handler: the sleep action or `sleep N` in an exec command. */
export function preStopSeconds(container: Json): number {
  const seconds = at(container, "lifecycle.preStop.sleep.seconds");
  if (typeof seconds === "number") return seconds;
  const command = asArray(at(container, "lifecycle.preStop.exec.command")).join(" ");
  const match = /sleep\s+(\d+)/.exec(command);
  return match ? Number(match[1]) : 0;
}

export function envValue(container: Json, name: string): string | undefined {
  const entry = asArray(container.env).find((variable) => (variable as Json).name === name) as Json | undefined;
  return typeof entry?.value === "string" ? entry.value : undefined;
}

/** Workloads in the same namespace whose pod labels a selector matches. */
export function workloadsSelectedBy(
  plan: PlanDocument,
  namespace: string,
  selector: PlanValue | undefined,
): PlanResource[] {
  return workloads(plan).filter(
    (workload) => namespaceOf(workload) === namespace && selects(selector, podLabelsOf(workload)),
  );
}

/** Namespaces that hold a workload of the platform: the application namespaces. */
export function applicationNamespaces(plan: PlanDocument): string[] {
  return [...new Set(workloads(plan).map(namespaceOf))].sort();
}
