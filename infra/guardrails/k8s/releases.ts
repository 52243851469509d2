import type { PlanDocument, PlanResource, PlanValue } from "../../../stacks/plan/document.js";
import { at, isCredentialKey } from "../guardrail.js";
import { budgetAllowsDisruption, type Json, namespaceOf, objectsOfKind, selects } from "./objects.js";

/**
 * Helm releases as the plan shows them: the chart, the release's name and namespace, and the values the platform
 * sets. The workloads a chart renders are not in the plan, only those values, so what K7 and K11 can say about a
 * release is what its values say, read with the chart's own keys (the versions infra/k8s/addons/charts.ts pins).
 */

/** Helm releases (and v4 Charts) with their chart name and values in the plan. */
export function helmReleases(plan: PlanDocument): PlanResource[] {
  return plan.resources.filter(
    (resource) => resource.type.startsWith("kubernetes:helm.sh/") && typeof resource.inputs.chart === "string",
  );
}

/** `ingress-nginx` from `ingress-nginx`, `repo/ingress-nginx` or `oci://registry/charts/ingress-nginx`. */
export function chartName(release: PlanResource): string {
  return String(release.inputs.chart).split("/").at(-1) ?? "";
}

export function releaseValues(release: PlanResource): Json {
  return asJson(release.inputs.values);
}

export function asJson(value: PlanValue | undefined): Json {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};
}

/** Every object in a values tree (arrays included), with its dotted path, the root first. */
export function* valueObjects(value: PlanValue | undefined, path: string[] = []): Generator<[string[], Json]> {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* valueObjects(item, [...path, String(index)]);
    return;
  }
  if (value === null || typeof value !== "object") return;
  yield [path, value];
  for (const [key, child] of Object.entries(value)) yield* valueObjects(child, [...path, key]);
}

/** How a chart's PodDisruptionBudget for one of its workloads reads. */
type BudgetSource =
  /** From the values at `path` (`enabled`, `minAvailable`, `maxUnavailable`), merged over the chart's default. */
  | { path: string; chartDefault: Json }
  /** The chart renders none: a PodDisruptionBudget object of the plan must select the chart's pods. */
  | { podLabels: (releaseName: string) => Record<string, string> };

/** A boolean the values set at `path`, or the chart's default when they do not. */
interface ChartSwitch {
  path: string;
  chartDefault: boolean;
}

interface ChartWorkload {
  /** How findings and K7_SINGLETONS name it. */
  workload: string;
  /** The values path of its replica count (absent: the chart's default, 1); none when the chart fixes it at 1. */
  replicas?: string;
  budget?: BudgetSource;
  /** The switch that renders it at all; absent: the chart always does. */
  renderedBy?: ChartSwitch;
  /** A controller whose replicas must elect a leader (else they all act): the switch that turns election on. */
  leaderElection?: ChartSwitch;
}

/**
 * The add-on workloads whose replica count and budget the plan can tell, by chart. Any other `replicaCount` or
 * `replicas` a release's values set is checked for its count alone: the plan cannot tell that chart's budget.
 */
const CHART_WORKLOADS: Readonly<Record<string, ChartWorkload[]>> = {
  // the controller's budget is rendered when replicaCount > 1, from controller.minAvailable (default 1)
  "ingress-nginx": [
    {
      workload: "controller",
      replicas: "controller.replicaCount",
      budget: { path: "controller", chartDefault: { minAvailable: 1 } },
    },
  ],
  // each budget off by default; read as none unless the values set its limit (not every template supplies one)
  "cert-manager": [
    {
      workload: "controller",
      replicas: "replicaCount",
      budget: { path: "podDisruptionBudget", chartDefault: { enabled: false } },
    },
    {
      workload: "webhook",
      replicas: "webhook.replicaCount",
      budget: { path: "webhook.podDisruptionBudget", chartDefault: { enabled: false } },
    },
    {
      workload: "cainjector",
      replicas: "cainjector.replicaCount",
      budget: { path: "cainjector.podDisruptionBudget", chartDefault: { enabled: false } },
      renderedBy: { path: "cainjector.enabled", chartDefault: true },
    },
  ],
  // budgets off by default, `minAvailable: 1` when on; the controller's leader election is off by default
  "external-secrets": [
    {
      workload: "controller",
      replicas: "replicaCount",
      budget: { path: "podDisruptionBudget", chartDefault: { enabled: false, minAvailable: 1 } },
      renderedBy: { path: "createOperator", chartDefault: true },
      leaderElection: { path: "leaderElect", chartDefault: false },
    },
    {
      workload: "webhook",
      replicas: "webhook.replicaCount",
      budget: { path: "webhook.podDisruptionBudget", chartDefault: { enabled: false, minAvailable: 1 } },
      renderedBy: { path: "webhook.create", chartDefault: true },
    },
  ],
  // a budget per workload, rendered when its map is non-empty (the shared top-level limit is not read here)
  keda: [
    {
      workload: "operator",
      replicas: "operator.replicaCount",
      budget: { path: "podDisruptionBudget.operator", chartDefault: {} },
    },
    {
      workload: "metrics-apiserver",
      replicas: "metricsServer.replicaCount",
      budget: { path: "podDisruptionBudget.metricServer", chartDefault: {} },
    },
    {
      workload: "admission-webhooks",
      replicas: "webhooks.replicaCount",
      budget: { path: "podDisruptionBudget.webhooks", chartDefault: {} },
      renderedBy: { path: "webhooks.enabled", chartDefault: true },
    },
  ],
  "aws-load-balancer-controller": [
    { workload: "controller", replicas: "replicaCount", budget: { path: "podDisruptionBudget", chartDefault: {} } },
  ],
  "metrics-server": [
    {
      workload: "metrics-server",
      replicas: "replicas",
      budget: { path: "podDisruptionBudget", chartDefault: { enabled: false } },
    },
  ],
  "cluster-autoscaler": [
    {
      workload: "cluster-autoscaler",
      replicas: "replicaCount",
      budget: { path: "podDisruptionBudget", chartDefault: { maxUnavailable: 1 } },
    },
  ],
  // the chart's Deployment says `replicas: 1` and it renders no budget
  "external-dns": [{ workload: "external-dns" }],
  // Prometheus' and Alertmanager's budgets are off by default, `minAvailable: 1` when on
  "kube-prometheus-stack": [
    {
      workload: "grafana",
      replicas: "grafana.replicas",
      budget: { path: "grafana.podDisruptionBudget", chartDefault: {} },
    },
    {
      workload: "prometheus",
      replicas: "prometheus.prometheusSpec.replicas",
      budget: { path: "prometheus.podDisruptionBudget", chartDefault: { enabled: false, minAvailable: 1 } },
      renderedBy: { path: "prometheus.enabled", chartDefault: true },
    },
    {
      workload: "alertmanager",
      replicas: "alertmanager.alertmanagerSpec.replicas",
      budget: { path: "alertmanager.podDisruptionBudget", chartDefault: { enabled: false, minAvailable: 1 } },
      renderedBy: { path: "alertmanager.enabled", chartDefault: true },
    },
  ],
  "prometheus-rabbitmq-exporter": [
    {
      workload: "exporter",
      replicas: "replicaCount",
      budget: { podLabels: (release) => ({ app: "prometheus-rabbitmq-exporter", release }) },
    },
  ],
};

/**
 * Add-on workloads that run one replica in prod on purpose (`<chart>/<workload>`), each documented where it is
 * configured (infra/k8s/addons/addons.ts) and in README.md, "Add-on availability". A singleton's budget, if it has
 * one, must still let a node drain evict it.
 */
export const K7_SINGLETONS: Readonly<Record<string, string>> = {
  "external-dns/external-dns":
    "no leader election: two replicas would write the same records concurrently; the chart fixes one replica",
  "kube-prometheus-stack/grafana":
    "users, sessions and alert state live in a SQLite database per pod: more replicas need a shared database",
};

const REPLICA_KEYS = new Set(["replicaCount", "replicas"]);

type Fail = (resource: PlanResource, reason: string) => void;

/**
 * K7 over the Helm releases of a prod plan: ≥ 2 replicas, a budget allowing a disruption, and leader election where
 * replicas would otherwise all act, where the plan can tell. Findings name the add-on (`<chart> <workload>`).
 */
export function checkReleaseAvailability(plan: PlanDocument, fail: Fail): void {
  for (const release of helmReleases(plan)) {
    const chart = chartName(release);
    const values = releaseValues(release);
    const isOn = (toggle: ChartSwitch): boolean => {
      const set = at(values, toggle.path);
      return typeof set === "boolean" ? set : toggle.chartDefault;
    };
    const known = (CHART_WORKLOADS[chart] ?? []).filter(
      (workload) => !workload.renderedBy || isOn(workload.renderedBy),
    );
    const knownPaths = new Set(known.map((workload) => workload.replicas));
    const others: ChartWorkload[] = [...valueObjects(values)].flatMap(([path, object]) =>
      Object.entries(object)
        .filter(([key, count]) => REPLICA_KEYS.has(key) && typeof count === "number")
        .map(([key]) => [...path, key].join("."))
        .filter((replicas) => !knownPaths.has(replicas))
        .map((replicas) => ({ workload: replicas, replicas })),
    );
    for (const workload of [...known, ...others]) {
      const name = `${chart} ${workload.workload}${workload.replicas ? ` (${workload.replicas})` : ""}`;
      const replicas = workload.replicas === undefined ? 1 : Number(at(values, workload.replicas) ?? 1);
      const budget = budgetOf(plan, release, workload.budget);
      const singleton = K7_SINGLETONS[`${chart}/${workload.workload}`] !== undefined;
      if (replicas < 2 && !singleton) fail(release, `${name} runs ${replicas} replica(s) in prod`);
      if (replicas >= 2 && workload.budget && !budget) fail(release, `${name} has no PodDisruptionBudget`);
      if (budget && !budgetAllowsDisruption(budget, replicas))
        fail(release, `${name}: its PodDisruptionBudget allows no disruption (node drains would block)`);
      if (replicas >= 2 && workload.leaderElection && !isOn(workload.leaderElection))
        fail(release, `${name} runs ${replicas} replicas without leader election (${workload.leaderElection.path})`);
    }
  }
}

/** The budget a chart renders for a workload, or undefined when it renders none. */
function budgetOf(plan: PlanDocument, release: PlanResource, source: BudgetSource | undefined): Json | undefined {
  if (!source) return undefined;
  if ("podLabels" in source) {
    const labels = source.podLabels(String(release.inputs.name ?? ""));
    const object = objectsOfKind(plan, "PodDisruptionBudget").find(
      (budget) =>
        namespaceOf(budget) === String(release.inputs.namespace) && selects(at(budget.inputs, "spec.selector"), labels),
    );
    return object ? asJson(object.inputs.spec) : undefined;
  }
  const set = at(releaseValues(release), source.path);
  if (set === null) return undefined; // Helm drops a default map set to null
  const own = asJson(set);
  // a limit of the values' own replaces the default's (read as the one limit the chart renders)
  const { minAvailable: _min, maxUnavailable: _max, ...defaultSwitch } = source.chartDefault;
  const ownLimit = own.minAvailable !== undefined || own.maxUnavailable !== undefined;
  const budget = { ...(ownLimit ? defaultSwitch : source.chartDefault), ...own };
  if (budget.enabled === false) return undefined;
  return budget.minAvailable === undefined && budget.maxUnavailable === undefined ? undefined : budget;
}

/** A values key naming a Secret the chart reads instead of a value (`existingSecret`, `existingPasswordSecret`). */
const SECRET_NAME_KEY = /^existing\w*Secret$/;

/**
 * K11 over the Helm releases: a chart gets its secrets as the name of a Secret External Secrets syncs into the
 * release's namespace, never as a value (a value lands in the chart's own Secret and in Helm's release record, and
 * passes through Pulumi's state on the way, whether or not Pulumi marks it secret).
 */
export function checkReleaseSecrets(plan: PlanDocument, synced: ReadonlySet<string>, fail: Fail): void {
  for (const release of helmReleases(plan)) {
    const namespace = String(release.inputs.namespace ?? "default");
    for (const [path, object] of valueObjects(releaseValues(release))) {
      for (const [key, value] of Object.entries(object)) {
        if (typeof value !== "string" || value === "") continue;
        const where = [...path, key].join(".");
        if (isCredentialKey(key)) {
          fail(release, `${where} passes a secret as a chart value; give the chart a Secret an ExternalSecret syncs`);
        } else if (SECRET_NAME_KEY.test(key) && !synced.has(`${namespace}/${value}`)) {
          fail(release, `${where} names Secret ${value}, which no ExternalSecret syncs into ${namespace}`);
        }
      }
    }
  }
}
