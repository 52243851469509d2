import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../../stacks/topology.js";
import { GPU_TAINT, NODE_POOL_LABEL } from "../aws/cluster.js";
import { applyTransform, type Transform } from "../aws/transform.js";
import { labelsFor } from "./names.js";
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

/** Seconds of preStop pause: the worker stops taking deliveries before SIGTERM (K9). */
export const WORKER_PRE_STOP_SECONDS = 5;
/** Seconds a stopping worker gets to finish or nack its in-flight batch (SHUTDOWN_TIMEOUT_MS). */
export const WORKER_DRAIN_SECONDS = 30;
/**
 * Seconds the inference threads then get to return from a run before they are ended (INFERENCE_STOP_TIMEOUT_MS):
 * ending one inside onnxruntime aborts the process, so the grace period covers this too. A GPU batch takes
 * milliseconds, a CPU-fallback batch of 8 about a second.
 */
export const WORKER_BATCH_STOP_SECONDS = 5;
/** Where the init container puts the verified model; the worker reads it from there. */
export const MODEL_PATH = "/models/model.onnx";
/**
 * The image that fetches and checks the model: the AWS CLI (it has `sha256sum`), pinned. Mirror it into ECR where
 * nodes cannot reach public.ecr.aws.
 */
export const MODEL_FETCH_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.22.0";

/** `2` → 2, `1500m` → 2: whole cores for ONNX Runtime's intra-op threads. */
export function threadsFor(cpu: string): number {
  const cores = cpu.endsWith("m") ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu);
  return Math.max(1, Math.ceil(cores));
}

/** The released model: where it is, its digest, and the post-processing its card measured the quality bar with. */
export interface DetectorModel {
  key: string;
  sha256: string;
  confidenceThreshold: number;
  nmsIou: number;
  classAgnosticNms: boolean;
}

export interface DetectionWorkerArgs {
  /** The worker as stacks/topology.ts describes it (`gpu: true`, `queue`). */
  spec: ServiceSpec;
  environment: "dev" | "prod";
  namespace: string;
  /** The ECR repository URL of the spec's image (infra/aws/registry.ts). */
  repository: pulumi.Input<string>;
  /** A tag (the commit) or `sha256:<digest>`, never `latest`. */
  imageTag: string;
  connections: Connections;
  vpcCidr: string;
  /** The model object in the models bucket and its sha256 (the worker does not start on a mismatch), and its thresholds. */
  model: DetectorModel;
  serviceAccountRole?: ServiceAccountRoleFactory;
  /**
   * Messages waiting per replica before KEDA adds one (a few batches of work).
   * @default 20
   */
  messagesPerReplica?: number;
  /** @default MODEL_FETCH_IMAGE */
  modelFetchImage?: string;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  transform?: { deployment?: Transform<Deployment> };
}

/**
 * The ONNX detection worker on the GPU node group: node affinity to the `gpu` pool, the GPU taint tolerated, one
 * `nvidia.com/gpu`; an init container fetches the model from the models bucket and checks its sha256 before the
 * worker starts; a startup probe covers the model load; ONNX Runtime's thread count follows the CPU request. KEDA
 * scales it on the depth of the `detections` queue (RabbitMQ scaler through the management API; dev may scale to 0,
 * and the GPU node group with it). Same hardening as FastifyService: restricted security context, IRSA scoped to
 * its buckets, ExternalSecret credentials, a NetworkPolicy that admits only Prometheus, a PDB and a ServiceMonitor on
 * its metrics port. No HPA of its own: KEDA's ScaledObject owns one.
 *
 * Cost: the GPU nodes it lands on: dev g6.xlarge spot ~$0.35/h only while there is work; prod 2–6 g6.2xlarge (~$710
 * per node-month each).
 */
export class DetectionWorker extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly scaledObject: k8s.apiextensions.CustomResource;

  constructor(name: string, args: DetectionWorkerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:DetectionWorker", name, {}, opts);
    const { spec, namespace } = args;
    const { labels, selector } = labelsFor(spec.name, "worker");
    const secretName = `${spec.name}-env`;
    const queue = spec.queue ?? "detections";
    const wiring = wireConnections(spec, args.connections, {
      secretName,
      vpcCidr: args.vpcCidr,
      environment: args.environment,
    });
    const scaling = spec.scaling[args.environment];
    const child = { parent: this };
    const broker = args.connections.broker;
    if (!broker) throw new Error(`${spec.name} needs the broker connection, which the platform did not pass`);

    const serviceAccount = createServiceAccount(this);
    const secrets = externalSecret(secretName, namespace, labels, wiring.secretData, child);
    this.deployment = createDeployment(this);
    const service = createMetricsService();
    createDisruptionBudget();
    createNetworkPolicy();
    serviceMonitor(spec.name, namespace, labels, selector, "metrics", { ...child, dependsOn: [service] });
    this.scaledObject = createScaledObject(this, createTriggerAuthentication());
    this.registerOutputs({});

    function createServiceAccount(parent: DetectionWorker): k8s.core.v1.ServiceAccount {
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
          automountServiceAccountToken: false,
        },
        { parent },
      );
    }

    function createDeployment(parent: DetectionWorker): k8s.apps.v1.Deployment {
      const threads = threadsFor(spec.resources.cpu);
      const modelsBucket = wiring.env.find((variable) => variable.name === "S3_BUCKET_MODELS")?.value;
      const deployment: Deployment = {
        metadata: { name: spec.name, namespace, labels },
        spec: {
          // No `replicas`: KEDA owns them (down to 0 in dev).
          revisionHistoryLimit: 5,
          selector: { matchLabels: selector },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: spec.name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: podSecurityContext(),
              terminationGracePeriodSeconds:
                WORKER_PRE_STOP_SECONDS + WORKER_DRAIN_SECONDS + WORKER_BATCH_STOP_SECONDS + 10,
              affinity: {
                nodeAffinity: {
                  requiredDuringSchedulingIgnoredDuringExecution: {
                    nodeSelectorTerms: [
                      { matchExpressions: [{ key: NODE_POOL_LABEL, operator: "In", values: ["gpu"] }] },
                    ],
                  },
                },
              },
              tolerations: [{ key: GPU_TAINT.key, operator: "Equal", value: GPU_TAINT.value, effect: "NoSchedule" }],
              // GPU capacity may sit in one zone (spot): spread when possible, never block scheduling.
              topologySpreadConstraints: topologySpread(selector, "ScheduleAnyway"),
              initContainers: [
                {
                  name: "fetch-model",
                  image: args.modelFetchImage ?? MODEL_FETCH_IMAGE,
                  imagePullPolicy: "IfNotPresent",
                  command: ["/bin/sh", "-c"],
                  args: [
                    'set -eu; aws s3 cp "s3://$MODEL_BUCKET/$MODEL_KEY" "$MODEL_PATH.part" --only-show-errors; ' +
                      'echo "$MODEL_SHA256  $MODEL_PATH.part" | sha256sum -c -; mv "$MODEL_PATH.part" "$MODEL_PATH"',
                  ],
                  env: [
                    { name: "MODEL_BUCKET", value: modelsBucket },
                    { name: "MODEL_KEY", value: args.model.key },
                    { name: "MODEL_SHA256", value: args.model.sha256 },
                    { name: "MODEL_PATH", value: MODEL_PATH },
                    { name: "HOME", value: "/tmp" },
                    ...wiring.env.filter((variable) => variable.name === "AWS_REGION"),
                  ],
                  resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
                  securityContext: containerSecurityContext(),
                  volumeMounts: [
                    { name: "models", mountPath: "/models" },
                    { name: "tmp", mountPath: "/tmp" },
                  ],
                },
              ],
              containers: [
                {
                  name: spec.name,
                  image: imageRef(args.repository, args.imageTag),
                  imagePullPolicy: "IfNotPresent",
                  ports: [{ name: "metrics", containerPort: spec.port, protocol: "TCP" }],
                  env: [
                    { name: "HOST", value: "0.0.0.0" },
                    { name: "PORT", value: String(spec.port) },
                    { name: "NODE_ENV", value: "production" },
                    { name: "DETECTIONS_QUEUE", value: queue },
                    { name: "MODEL_PATH", value: MODEL_PATH },
                    { name: "MODEL_SHA256", value: args.model.sha256 },
                    { name: "CONF_THRESHOLD", value: String(args.model.confidenceThreshold) },
                    { name: "NMS_IOU", value: String(args.model.nmsIou) },
                    { name: "NMS_AGNOSTIC", value: String(args.model.classAgnosticNms) },
                    // CUDA first; the worker falls back to CPU (and says so) when the GPU runtime is missing.
                    { name: "ORT_PROVIDERS", value: "cuda,cpu" },
                    // One session on the GPU (each session holds its own CUDA memory); its intra-op threads, for
                    // the CPU parts of the graph and the CPU fallback, = whole cores requested: more threads than
                    // cores only adds contention.
                    { name: "INFERENCE_THREADS", value: "1" },
                    { name: "ORT_INTRA_OP_THREADS", value: String(threadsFor(spec.resources.cpu)) },
                    { name: "UV_THREADPOOL_SIZE", value: String(Math.max(4, threads)) },
                    { name: "SHUTDOWN_TIMEOUT_MS", value: String(WORKER_DRAIN_SECONDS * 1000) },
                    { name: "INFERENCE_STOP_TIMEOUT_MS", value: String(WORKER_BATCH_STOP_SECONDS * 1000) },
                    ...wiring.env,
                  ],
                  resources: {
                    requests: { cpu: spec.resources.cpu, memory: spec.resources.memory, "nvidia.com/gpu": "1" },
                    limits: { memory: spec.resources.memoryLimit, "nvidia.com/gpu": "1" },
                  },
                  // The model load (CUDA init, session creation) may take minutes: liveness waits for it (K6).
                  startupProbe: {
                    httpGet: { path: "/readyz", port: "metrics" },
                    periodSeconds: 5,
                    failureThreshold: 60,
                  },
                  livenessProbe: {
                    httpGet: { path: "/healthz", port: "metrics" },
                    periodSeconds: 10,
                    timeoutSeconds: 2,
                    failureThreshold: 3,
                  },
                  readinessProbe: {
                    httpGet: { path: "/readyz", port: "metrics" },
                    periodSeconds: 10,
                    timeoutSeconds: 2,
                    failureThreshold: 2,
                  },
                  lifecycle: { preStop: { sleep: { seconds: WORKER_PRE_STOP_SECONDS } } },
                  securityContext: containerSecurityContext(),
                  volumeMounts: [
                    { name: "models", mountPath: "/models", readOnly: true },
                    { name: "tmp", mountPath: "/tmp" },
                    ...wiring.volumeMounts,
                  ],
                },
              ],
              volumes: [
                { name: "models", emptyDir: { sizeLimit: "2Gi" } },
                { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
                ...wiring.volumes,
              ],
            },
          },
        },
      };
      return new k8s.apps.v1.Deployment(`${name}-deployment`, applyTransform(deployment, args.transform?.deployment), {
        parent,
        dependsOn: [serviceAccount, secrets, ...(args.dependsOn ?? [])],
      });
    }

    function createMetricsService(): k8s.core.v1.Service {
      // Not for traffic: gives the ServiceMonitor endpoints to scrape.
      return new k8s.core.v1.Service(
        `${name}-service`,
        {
          metadata: { name: spec.name, namespace, labels },
          spec: {
            type: "ClusterIP",
            selector,
            ports: [{ name: "metrics", port: spec.port, targetPort: "metrics", protocol: "TCP" }],
          },
        },
        child,
      );
    }

    function createDisruptionBudget(): k8s.policy.v1.PodDisruptionBudget {
      return new k8s.policy.v1.PodDisruptionBudget(
        `${name}-pdb`,
        {
          metadata: { name: spec.name, namespace, labels },
          spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
        },
        child,
      );
    }

    function createNetworkPolicy(): k8s.networking.v1.NetworkPolicy {
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-netpol`,
        {
          metadata: { name: spec.name, namespace, labels },
          spec: {
            podSelector: { matchLabels: selector },
            policyTypes: ["Ingress", "Egress"],
            ingress: [fromMonitoring(spec.port)],
            egress: wiring.egress,
          },
        },
        child,
      );
    }

    function createTriggerAuthentication(): k8s.apiextensions.CustomResource {
      // KEDA reads the queue depth through the management API with the broker's own credentials, as one URL.
      const kedaSecret = `${spec.name}-keda`;
      const managementUrl = broker?.managementUrl ?? "";
      const host = pulumi
        .output(managementUrl)
        .apply(
          (url) => `${url.replace(/^https:\/\//, "https://{{ .username | urlquery }}:{{ .password | urlquery }}@")}/`,
        );
      const secret = externalSecret(
        kedaSecret,
        namespace,
        labels,
        [
          { secretKey: "username", remoteRef: { key: broker?.secretArn ?? "", property: "username" } },
          { secretKey: "password", remoteRef: { key: broker?.secretArn ?? "", property: "password" } },
        ],
        child,
        { host },
      );
      return new k8s.apiextensions.CustomResource(
        `${name}-trigger-auth`,
        {
          apiVersion: "keda.sh/v1alpha1",
          kind: "TriggerAuthentication",
          metadata: { name: kedaSecret, namespace, labels },
          spec: { secretTargetRef: [{ parameter: "host", name: kedaSecret, key: "host" }] },
        },
        { ...child, dependsOn: [secret] },
      );
    }

    function createScaledObject(
      parent: DetectionWorker,
      auth: k8s.apiextensions.CustomResource,
    ): k8s.apiextensions.CustomResource {
      return new k8s.apiextensions.CustomResource(
        `${name}-scaledobject`,
        {
          apiVersion: "keda.sh/v1alpha1",
          kind: "ScaledObject",
          metadata: { name: spec.name, namespace, labels },
          spec: {
            scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: spec.name },
            minReplicaCount: scaling.min,
            maxReplicaCount: scaling.max,
            pollingInterval: 15,
            // Keep an idle GPU pod 5 minutes before scaling to the minimum: model loads are not free.
            cooldownPeriod: 300,
            triggers: [
              {
                type: "rabbitmq",
                metadata: {
                  protocol: "http",
                  queueName: queue,
                  mode: "QueueLength",
                  value: String(args.messagesPerReplica ?? 20),
                },
                authenticationRef: { name: `${spec.name}-keda` },
              },
            ],
          },
        },
        { parent, dependsOn: [auth, parent.deployment] },
      );
    }
  }
}
