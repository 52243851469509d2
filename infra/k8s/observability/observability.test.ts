import { describe, expect, it } from "vitest";
import type { PlanDocument, PlanResource } from "../../../stacks/plan/document.js";
import { planOf, resourceOf, resourcesOf } from "../../../stacks/plan/testing.js";
import { DASHBOARDS, type Dashboard } from "./dashboards.js";
import { expressionProblems, metricNames } from "./promql.js";
import { type AlertRule, platformRules } from "./rules.js";

const RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule";
const AM_CONFIG = "kubernetes:monitoring.coreos.com/v1alpha1:AlertmanagerConfig";
const EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret";
const CONFIG_MAP = "kubernetes:core/v1:ConfigMap";

const rulesIn = (plan: PlanDocument): AlertRule[] => {
  const resource = resourceOf(plan, RULE, "observability-rules");
  const spec = resource.inputs.spec as unknown as { groups: { rules: AlertRule[] }[] };
  return spec.groups.flatMap((group) => group.rules);
};
const byName = (rules: AlertRule[], alert: string): AlertRule => {
  const found = rules.find((rule) => rule.alert === alert);
  if (!found) throw new Error(`no alert ${alert} (have ${rules.map((rule) => rule.alert).join(", ")})`);
  return found;
};
const dashboardsIn = (plan: PlanDocument): Record<string, Dashboard> =>
  Object.fromEntries(
    resourcesOf(plan, CONFIG_MAP)
      .filter((resource) => resource.parent === "ndt:k8s:Observability::observability")
      .flatMap((resource: PlanResource) =>
        Object.entries(resource.inputs.data as Record<string, string>).map(([file, json]) => [file, JSON.parse(json)]),
      ),
  );

describe("PromQL checks", () => {
  it("find unbalanced brackets and unterminated strings", () => {
    expect(expressionProblems('sum(rate(x{a="b"}[5m]))')).toEqual([]);
    expect(expressionProblems("sum(rate(x[5m])")).not.toEqual([]);
    expect(expressionProblems('x{a="b}')).not.toEqual([]);
    expect(expressionProblems("x{a='b'}[5m]]")).not.toEqual([]);
    expect(expressionProblems("  ")).not.toEqual([]);
  });

  it("list the metrics an expression selects, not functions, keywords or labels", () => {
    expect(
      metricNames(
        'sum by (service, le) (rate(a_total{route!~"/x"}[5m])) / on() group_left b > 0 and absent(c) or vector(1)',
      ),
    ).toEqual(["a_total", "b", "c"]);
  });
});

describe("PrometheusRules", () => {
  it("are one PrometheusRule labelled for kube-prometheus-stack's rule selector, the same in dev and prod", async () => {
    const prod = resourceOf(await planOf("prod"), RULE, "observability-rules");
    expect(prod.inputs.metadata).toMatchObject({
      namespace: "monitoring",
      labels: { release: "kube-prometheus-stack" },
    });
    expect(rulesIn(await planOf("dev"))).toEqual(rulesIn(await planOf("prod")));
  });

  it("every alert parses at bracket level, has a severity, a summary and a description", async () => {
    const rules = rulesIn(await planOf("prod"));
    expect(rules.length).toBeGreaterThanOrEqual(6);
    for (const rule of rules) {
      expect(expressionProblems(rule.expr), rule.alert).toEqual([]);
      expect(["critical", "warning"], rule.alert).toContain(rule.labels.severity);
      expect(rule.annotations.summary.length, rule.alert).toBeGreaterThan(10);
      expect(rule.annotations.description.length, rule.alert).toBeGreaterThan(10);
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
    }
  });

  it("read the metrics the services, the queue exporter, kube-state-metrics and DCGM export", async () => {
    const rules = rulesIn(await planOf("prod"));
    const errors = byName(rules, "HttpServerErrorRateHigh");
    expect(metricNames(errors.expr)).toEqual(["http_request_duration_seconds_count"]);
    expect(errors.expr).toContain('status_code=~"5.."');
    const latency = byName(rules, "HttpLatencyP99High");
    expect(latency.expr).toMatch(
      /^histogram_quantile\(0\.99, sum by \([^)]*\ble\b[^)]*\) \(rate\(http_request_duration_seconds_bucket\{/,
    );
    expect(metricNames(byName(rules, "DetectionQueueGrowing").expr)).toEqual(["rabbitmq_queue_messages_ready"]);
    expect(byName(rules, "DetectionQueueGrowing").expr).toContain("deriv(");
    const dlq = byName(rules, "DeadLetterQueueNotEmpty");
    expect(metricNames(dlq.expr)).toEqual(["rabbitmq_queue_messages"]);
    expect(dlq.expr).toMatch(/queue="detections\.dlq"\}\) > 0$/);
    expect(metricNames(byName(rules, "PodRestartingOften").expr)).toEqual(["kube_pod_container_status_restarts_total"]);
    expect(metricNames(byName(rules, "GpuIdleWhileQueueGrows").expr)).toEqual([
      "DCGM_FI_DEV_GPU_UTIL",
      "rabbitmq_queue_messages_ready",
    ]);
  });

  it("a threshold change reaches the expression", () => {
    const rules = platformRules({
      errorRatio: 0.2,
      p99Seconds: 3,
      queueBacklog: 5,
      restarts: 1,
      gpuIdlePercent: 20,
    }).flatMap((group) => group.rules);
    expect(byName(rules, "HttpServerErrorRateHigh").expr).toContain("> 0.2");
    expect(byName(rules, "HttpLatencyP99High").expr).toMatch(/> 3$/);
    expect(byName(rules, "GpuIdleWhileQueueGrows").expr).toContain("< 20");
  });
});

describe("Alertmanager routing", () => {
  it("dev posts to Slack, the webhook URL from a Secret synced out of Secrets Manager", async () => {
    const plan = await planOf("dev");
    const config = resourceOf(plan, AM_CONFIG, "observability-alertmanager-config");
    expect(config.inputs.metadata).toMatchObject({ name: "ndt-alerting", namespace: "monitoring" });
    const spec = config.inputs.spec as { route: { receiver: string }; receivers: Record<string, unknown>[] };
    expect(spec.route.receiver).toBe("oncall");
    expect(spec.receivers[0]).toMatchObject({
      name: "oncall",
      slackConfigs: [{ apiURL: { name: "alertmanager-receiver", key: "url" }, channel: "#ndt-alerts-dev" }],
    });
    const secret = resourceOf(plan, EXTERNAL_SECRET, "observability-receiver-secret");
    expect(secret.inputs.spec).toMatchObject({
      secretStoreRef: { kind: "ClusterSecretStore", name: "aws-secrets-manager" },
      target: { name: "alertmanager-receiver" },
      data: [{ secretKey: "url", remoteRef: { key: "ndt/dev/alertmanager-receiver", property: "url" } }],
    });
  });

  it("prod mails on-call, the SMTP password from the synced Secret; no credential is plain in either plan", async () => {
    const prod = await planOf("prod");
    const spec = resourceOf(prod, AM_CONFIG, "observability-alertmanager-config").inputs.spec as {
      receivers: Record<string, unknown>[];
    };
    expect(spec.receivers[0]).toMatchObject({
      emailConfigs: [
        { to: "oncall@ndt.example.com", authPassword: { name: "alertmanager-receiver", key: "password" } },
      ],
    });
    for (const plan of [prod, await planOf("dev")]) {
      const text = JSON.stringify(plan);
      expect(text).not.toMatch(/hooks\.slack\.com/);
      expect(text).not.toMatch(/"(authPassword|apiURL)":"/);
    }
  });

  it("the queue exporter reads the broker through the management API with synced credentials", async () => {
    const plan = await planOf("prod");
    const release = resourceOf(plan, "kubernetes:helm.sh/v3:Release", "observability-rabbitmq-exporter");
    expect(release.inputs.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(release.inputs.values).toMatchObject({
      rabbitmq: {
        url: "https://broker-rabbitmq.mq.eu-west-1.amazonaws.com",
        existingPasswordSecret: "rabbitmq-exporter-credentials",
      },
      prometheus: { monitor: { enabled: true, additionalLabels: { release: "kube-prometheus-stack" } } },
    });
  });

  it("the exporter runs two replicas in prod, spread over zones, with a budget selecting the chart's pods", async () => {
    const plan = await planOf("prod");
    const pods = { app: "prometheus-rabbitmq-exporter", release: "rabbitmq-exporter" };
    const release = resourceOf(plan, "kubernetes:helm.sh/v3:Release", "observability-rabbitmq-exporter");
    expect(release.inputs.name).toBe("rabbitmq-exporter");
    expect(release.inputs.values).toMatchObject({
      replicaCount: 2,
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { podAffinityTerm: { topologyKey: "topology.kubernetes.io/zone", labelSelector: { matchLabels: pods } } },
          ],
        },
      },
    });
    const budget = resourceOf(plan, "kubernetes:policy/v1:PodDisruptionBudget", "observability-rabbitmq-exporter-pdb");
    expect(budget.inputs.metadata).toMatchObject({ namespace: "monitoring" });
    expect(budget.inputs.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: pods } });
    const dev = await planOf("dev");
    expect(
      resourceOf(dev, "kubernetes:helm.sh/v3:Release", "observability-rabbitmq-exporter").inputs.values,
    ).toMatchObject({ replicaCount: 1 });
    expect(dev.resources.some((resource) => resource.name === "observability-rabbitmq-exporter-pdb")).toBe(false);
  });

  it("queue rules and panels take one exporter replica's value, never the replicas' sum", async () => {
    const plan = await planOf("prod");
    const queueExpressions = [
      ...rulesIn(plan).map((rule) => rule.expr),
      ...Object.values(dashboardsIn(plan)).flatMap((dashboard) =>
        dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)),
      ),
    ].filter((expr) => expr.includes("rabbitmq_"));
    expect(queueExpressions.length).toBeGreaterThanOrEqual(6);
    for (const expr of queueExpressions) {
      expect(expr).toContain("max by (queue) (rabbitmq_");
      expect(expr).not.toMatch(/sum[^(]*\(rabbitmq_/);
    }
  });
});

describe("Grafana dashboards", () => {
  it("are valid JSON ConfigMaps the Grafana sidecar picks up", async () => {
    const plan = await planOf("prod");
    const maps = resourcesOf(plan, CONFIG_MAP).filter(
      (resource) => resource.parent === "ndt:k8s:Observability::observability",
    );
    expect(maps).toHaveLength(Object.keys(DASHBOARDS).length);
    for (const map of maps) {
      expect(map.inputs.metadata).toMatchObject({ namespace: "monitoring", labels: { grafana_dashboard: "1" } });
      for (const json of Object.values(map.inputs.data as Record<string, string>))
        expect(() => JSON.parse(json)).not.toThrow();
    }
  });

  it("have the panels the issue names, each with a parseable query, laid out on the 24-column grid", async () => {
    const dashboards = dashboardsIn(await planOf("prod"));
    const titles = (file: string) => (dashboards[file]?.panels ?? []).map((panel) => panel.title);
    expect(titles("platform-overview.json")).toEqual(
      expect.arrayContaining([
        "Requests per second",
        "5xx ratio",
        "Detections queue",
        "Dead-letter queue",
        "GPU utilisation",
      ]),
    );
    expect(titles("service-red.json")).toEqual(
      expect.arrayContaining(["Rate by route", "Errors (5xx) by route", "Duration p50 / p90 / p99"]),
    );
    expect(titles("detector.json")).toEqual(
      expect.arrayContaining([
        "Throughput (images/s)",
        "Inference latency",
        "Batch size",
        "GPU utilisation",
        "GPU memory used",
      ]),
    );
    for (const [file, dashboard] of Object.entries(dashboards)) {
      expect(new Set(dashboard.panels.map((panel) => panel.id)).size, file).toBe(dashboard.panels.length);
      for (const panel of dashboard.panels) {
        expect(panel.gridPos.x + panel.gridPos.w, `${file} ${panel.title}`).toBeLessThanOrEqual(24);
        expect(panel.targets.length, `${file} ${panel.title}`).toBeGreaterThan(0);
        for (const target of panel.targets)
          expect(expressionProblems(target.expr), `${file} ${panel.title}`).toEqual([]);
      }
    }
    expect(dashboards["service-red.json"]?.templating.list[0]).toMatchObject({ name: "service", type: "query" });
  });
});
