import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { calleeVariables, type ServiceSpec } from "../../stacks/topology.js";
import { applyTransform, type Transform } from "../aws/transform.js";
import { INGRESS_NAMESPACE, labelsFor } from "./names.js";
import {
  serviceRole,
  type Connections,
  containerSecurityContext,
  externalSecret,
  fromMonitoring,
  imageRef,
  podSecurityContext,
  type ServiceAccountRoleFactory,
  serviceMonitor,
  topologySpread,
  wireConnections,
} from "./workload.js";

type Deployment = k8s.types.input.apps.v1.Deployment;

/** Seconds the pod keeps serving after it is told to stop, while endpoints and the ingress forget it (K9). */
export const PRE_STOP_SECONDS = 5;
/** Seconds the service drains in-flight requests after SIGTERM (SHUTDOWN_TIMEOUT_MS). */
export const DRAIN_SECONDS = 15;

export interface FastifyServiceArgs {
  /** The service as stacks/topology.ts describes it. */
  spec: ServiceSpec;
  environment: "dev" | "prod";
  /** The application namespace (infra/k8s/namespace.ts). */
  namespace: string;
  /** The ECR repository URL of the spec's image (infra/aws/registry.ts). */
  repository: pulumi.Input<string>;
  /** A tag (the commit) or `sha256:<digest>`, never `latest`. */
  imageTag: string;
  /** The connections the spec names; others are ignored. */
  connections: Connections;
  /** The VPC's CIDR: the data tiers are reached by port inside it (NetworkPolicy egress). */
  vpcCidr: string;
  /** Services allowed to call this one (NetworkPolicy ingress); the public service also admits the ingress controller. */
  callers: string[];
  /** Services this one calls, with their ports (NetworkPolicy egress). */
  callees: { name: string; port: number }[];
  /** Creates the IRSA role for the service account; used only when the service has buckets. */
  serviceAccountRole?: ServiceAccountRoleFactory;
  /** Extra plain env settings (never secrets: those come through the ExternalSecret). */
  env?: Record<string, pulumi.Input<string>>;
  /** What the rollout waits for, e.g. the migrations Job. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  transform?: { deployment?: Transform<Deployment> };
}

/**
 * A Fastify service on EKS, secure and highly available by default: its own ServiceAccount (IRSA role scoped to its
 * buckets, API token not mounted), a Deployment under the restricted Pod Security profile (read-only root
 * filesystem, emptyDir /tmp, non-root, no capabilities), requests and a memory limit, distinct liveness `/healthz`
 * and readiness `/readyz`, a preStop pause and a grace period longer than pause + drain, zone spread and a rolling
 * update that never drops below the current replicas; a ClusterIP Service, an HPA (prod: ≥ 2), a PDB allowing one
 * disruption, a NetworkPolicy admitting only its callers and Prometheus and reaching only its dependencies, a
 * ServiceMonitor, and an ExternalSecret that syncs its credentials from AWS Secrets Manager.
 *
 * Cost: no AWS resources of its own beyond the IRSA role; the pods' requests (250–500m CPU, 256–512Mi) take a slice of
 * the system node group: dev 1 replica each, prod 2–8.
 */
export class FastifyService extends pulumi.ComponentResource {
  readonly serviceName: string;
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;

  constructor(name: string, args: FastifyServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:FastifyService", name, {}, opts);
    const { spec, namespace } = args;
    const { labels, selector } = labelsFor(spec.name, "service");
    const secretName = `${spec.name}-env`;
    const wiring = wireConnections(spec, args.connections, {
      secretName,
      vpcCidr: args.vpcCidr,
      environment: args.environment,
    });
    const scaling = spec.scaling[args.environment];
    const child = { parent: this };
    this.serviceName = spec.name;

    const serviceAccount = createServiceAccount(this);
    const secrets =
      wiring.secretData.length > 0
        ? externalSecret(secretName, namespace, labels, wiring.secretData, child)
        : undefined;
    this.deployment = createDeployment(this);
    this.service = createService();
    createAutoscaler(this.deployment);
    createDisruptionBudget();
    createNetworkPolicy();
    serviceMonitor(spec.name, namespace, labels, selector, "http", { ...child, dependsOn: [this.service] });
    this.registerOutputs({ serviceName: this.serviceName });

    function createServiceAccount(parent: FastifyService): k8s.core.v1.ServiceAccount {
      const role = serviceRole(wiring, args.serviceAccountRole, namespace, spec.name);
      return new k8s.core.v1.ServiceAccount(
        `${name}-sa`,
        {
          metadata: {
            name: spec.name,
            namespace,
            labels,
            ...(role ? { annotations: { "eks.amazonaws.com/role-arn": role.arn } } : {}),
          },
          // The services never call the Kubernetes API (K5).
          automountServiceAccountToken: false,
        },
        { parent },
      );
    }

    function createDeployment(parent: FastifyService): k8s.apps.v1.Deployment {
      const plainEnv = [
        ...calleeEnv(args.callees, namespace),
        ...Object.entries(args.env ?? {}).map(([envName, value]) => ({ name: envName, value })),
      ];
      const deployment: Deployment = {
        metadata: { name: spec.name, namespace, labels },
        spec: {
          // No `replicas`: the HPA owns it, and server-side apply would otherwise fight it on every update.
          revisionHistoryLimit: 5,
          selector: { matchLabels: selector },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: {
              labels,
              // A new credential set rolls the pods (env from Secrets is read at start).
              annotations: { "ndt.io/secret-keys": wiring.secretData.map((entry) => entry.secretKey).join(",") },
            },
            spec: {
              serviceAccountName: spec.name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: podSecurityContext(),
              terminationGracePeriodSeconds: PRE_STOP_SECONDS + DRAIN_SECONDS + 10,
              topologySpreadConstraints: topologySpread(
                selector,
                args.environment === "prod" ? "DoNotSchedule" : "ScheduleAnyway",
              ),
              containers: [
                {
                  name: spec.name,
                  image: imageRef(args.repository, args.imageTag),
                  imagePullPolicy: "IfNotPresent",
                  ports: [{ name: "http", containerPort: spec.port, protocol: "TCP" }],
                  env: [
                    { name: "HOST", value: "0.0.0.0" },
                    { name: "PORT", value: String(spec.port) },
                    { name: "NODE_ENV", value: "production" },
                    { name: "SHUTDOWN_TIMEOUT_MS", value: String(DRAIN_SECONDS * 1000) },
                    // Every service is reached through a proxy in the VPC (the ingress controller before the gateway,
                    // the gateway before the rest), whose x-forwarded-for carries the client's address: per-IP limits
                    // and logs need that address, not the proxy's. NetworkPolicy admits only those callers.
                    { name: "TRUST_PROXY", value: args.vpcCidr },
                    ...plainEnv,
                    ...wiring.env,
                  ],
                  resources: {
                    requests: { cpu: spec.resources.cpu, memory: spec.resources.memory },
                    limits: { memory: spec.resources.memoryLimit },
                  },
                  // Liveness asks the process only; readiness asks its dependencies too (K6).
                  livenessProbe: {
                    httpGet: { path: "/healthz", port: "http" },
                    periodSeconds: 10,
                    timeoutSeconds: 2,
                    failureThreshold: 3,
                  },
                  readinessProbe: {
                    httpGet: { path: "/readyz", port: "http" },
                    periodSeconds: 5,
                    timeoutSeconds: 2,
                    failureThreshold: 2,
                  },
                  startupProbe: {
                    httpGet: { path: "/healthz", port: "http" },
                    periodSeconds: 2,
                    failureThreshold: 30,
                  },
                  // The sleep action needs no shell in the image (distroless).
                  lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
                  securityContext: containerSecurityContext(),
                  volumeMounts: [{ name: "tmp", mountPath: "/tmp" }, ...wiring.volumeMounts],
                },
              ],
              volumes: [{ name: "tmp", emptyDir: { sizeLimit: "256Mi" } }, ...wiring.volumes],
            },
          },
        },
      };
      return new k8s.apps.v1.Deployment(`${name}-deployment`, applyTransform(deployment, args.transform?.deployment), {
        parent,
        dependsOn: [serviceAccount, ...(secrets ? [secrets] : []), ...(args.dependsOn ?? [])],
      });
    }

    function createService(): k8s.core.v1.Service {
      return new k8s.core.v1.Service(
        `${name}-service`,
        {
          metadata: { name: spec.name, namespace, labels },
          spec: {
            type: "ClusterIP",
            selector,
            ports: [{ name: "http", port: spec.port, targetPort: "http", protocol: "TCP" }],
          },
        },
        child,
      );
    }

    function createAutoscaler(deployment: k8s.apps.v1.Deployment): k8s.autoscaling.v2.HorizontalPodAutoscaler {
      return new k8s.autoscaling.v2.HorizontalPodAutoscaler(
        `${name}-hpa`,
        {
          metadata: { name: spec.name, namespace, labels },
          spec: {
            scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: spec.name },
            minReplicas: scaling.min,
            maxReplicas: scaling.max,
            metrics: [
              { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } },
            ],
            behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
          },
        },
        { ...child, dependsOn: [deployment] },
      );
    }

    function createDisruptionBudget(): k8s.policy.v1.PodDisruptionBudget {
      return new k8s.policy.v1.PodDisruptionBudget(
        `${name}-pdb`,
        {
          metadata: { name: spec.name, namespace, labels },
          // One pod at a time may be evicted whatever the replica count: node drains never block (K7).
          spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
        },
        child,
      );
    }

    function createNetworkPolicy(): k8s.networking.v1.NetworkPolicy {
      const from = [
        ...(spec.public
          ? [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": INGRESS_NAMESPACE } } }]
          : []),
        ...args.callers.map((caller) => ({ podSelector: { matchLabels: labelsFor(caller).selector } })),
      ];
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-netpol`,
        {
          metadata: { name: spec.name, namespace, labels },
          spec: {
            podSelector: { matchLabels: selector },
            policyTypes: ["Ingress", "Egress"],
            ingress: [
              ...(from.length > 0 ? [{ from, ports: [{ protocol: "TCP", port: spec.port }] }] : []),
              fromMonitoring(spec.port),
            ],
            egress: [
              ...args.callees.map((callee) => ({
                to: [{ podSelector: { matchLabels: labelsFor(callee.name).selector } }],
                ports: [{ protocol: "TCP", port: callee.port }],
              })),
              ...wiring.egress,
            ],
          },
        },
        child,
      );
    }
  }
}

/**
 * The origin of each service this one calls, as `<CALLEE>_URL` (in-cluster DNS of its Service), and, when it calls
 * auth, `JWKS_URL`: services verify tokens themselves against auth's public keys (GUARDRAILS P-lines).
 */
export function calleeEnv(
  callees: readonly { name: string; port: number }[],
  namespace: string,
): { name: string; value: string }[] {
  const env: { name: string; value: string }[] = [];
  for (const callee of callees) {
    const origin = `http://${callee.name}.${namespace}.svc.cluster.local:${callee.port}`;
    for (const [name, value] of Object.entries(calleeVariables(callee.name, origin))) env.push({ name, value });
  }
  return env;
}
