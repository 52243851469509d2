import { type Static, type TLiteral, type TSchema, type TUnion, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

/**
 * The services of the platform, each named once (ARCHITECTURE.md "One topology, three targets"). stacks/platform.ts
 * turns every entry into a FastifyService or a DetectionWorker on EKS; the local stack into a process. Adding a
 * service is one entry here.
 *
 * `validateTopology` checks the shape with TypeBox and the rules that span services (port clashes, GPU services
 * without GPU nodes, unknown connections, missing images), collects every problem and throws one TopologyError.
 */

const strict = { additionalProperties: false } as const;
const OneOf = <const T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Union(
    values.map((value) => Type.Literal(value)),
    options,
  ) as unknown as TUnion<TLiteral<T[number]>[]>;

/** Connections to the AWS data tiers a service may ask for (infra/aws/connections.ts). */
export const CONNECTIONS = ["database", "database-reader", "cache", "broker"] as const;
export type ConnectionName = (typeof CONNECTIONS)[number];
/** The buckets the Storage component makes (infra/aws/storage.ts). */
export const BUCKETS = ["uploads", "reports", "models"] as const;
export type BucketName = (typeof BUCKETS)[number];

const DnsLabel = Type.String({
  pattern: "^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$",
  description: "a DNS label such as files",
});
const Quantity = (description: string) => Type.String({ pattern: "^[0-9]+(\\.[0-9]+)?(m|Mi|Gi)?$", description });
const Bounds = Type.Object(
  {
    /** Replicas the service never drops below (0 only for queue workers, which KEDA wakes). */
    min: Type.Integer({ minimum: 0, maximum: 100 }),
    max: Type.Integer({ minimum: 1, maximum: 100 }),
  },
  strict,
);

export const ServiceSpecSchema = Type.Object(
  {
    name: DnsLabel,
    /** `http`: a Fastify service behind a ClusterIP Service. `worker`: a queue consumer with a metrics/health port. */
    kind: OneOf(["http", "worker"] as const, { description: '"http" or "worker"' }),
    /** The image's ECR repository (infra/aws/registry.ts makes one per image, `ndt-<stack>/<image>`); no tag: the
     * stack config gives it, and it is never `latest`. */
    image: Type.String({
      pattern: "^[a-z0-9]+([._/-][a-z0-9]+)*$",
      description: "an ECR repository name such as files, without a tag",
    }),
    /** http: the port the service listens on. worker: the metrics and health port. Unique: the local stack runs them
     * all on one machine. */
    port: Type.Integer({ minimum: 1024, maximum: 65535, description: "an unprivileged port (1024–65535)" }),
    /** Reached from the internet through the ingress (exactly one service: the gateway). @default false */
    public: Type.Optional(Type.Boolean()),
    /** AWS data tiers the service talks to; each becomes env settings, a synced Secret and a NetworkPolicy egress. */
    connections: Type.Array(Type.String(), { uniqueItems: true }),
    /** Buckets, each scoped to a key prefix, read or readwrite (an IRSA role with one grant per entry). */
    buckets: Type.Array(
      Type.Object(
        {
          bucket: Type.String(),
          prefix: Type.String({ pattern: "^([a-z0-9-]+/)+$", description: 'a key prefix ending in "/"' }),
          access: OneOf(["read", "readwrite"] as const, { description: '"read" or "readwrite"' }),
        },
        strict,
      ),
    ),
    /** Other services this one calls in the cluster (NetworkPolicy: egress from it, ingress to them). */
    calls: Type.Array(Type.String(), { uniqueItems: true }),
    /** Extra secrets: env variable → Secrets Manager secret name under `ndt/<environment>/`. */
    secrets: Type.Optional(
      Type.Record(
        Type.String({ pattern: "^[A-Z][A-Z0-9_]*$" }),
        Type.String({ pattern: "^[a-z0-9-]+(/[a-z0-9-]+)*$" }),
      ),
    ),
    /** The queue a worker consumes; KEDA scales it on this queue's depth. */
    queue: Type.Optional(DnsLabel),
    scaling: Type.Object({ dev: Bounds, prod: Bounds }, strict),
    resources: Type.Object(
      {
        cpu: Quantity("a CPU quantity such as 250m or 2"),
        memory: Quantity("a memory quantity such as 256Mi"),
        /** Memory above this kills the container; CPU has no limit (throttling hurts latency more than it saves). */
        memoryLimit: Quantity("a memory quantity such as 512Mi"),
      },
      strict,
    ),
    /** Runs on the GPU node group with one `nvidia.com/gpu`. */
    gpu: Type.Boolean(),
  },
  strict,
);

export const TopologySchema = Type.Object(
  {
    services: Type.Array(ServiceSpecSchema, { minItems: 1 }),
    /** The Job that applies every service's database migrations before the services roll out. */
    migrations: Type.Object({ image: ServiceSpecSchema.properties.image }, strict),
  },
  strict,
);

type RawServiceSpec = Static<typeof ServiceSpecSchema>;
/** One service, validated: its connections and buckets are known names. */
export type ServiceSpec = Omit<RawServiceSpec, "connections" | "buckets"> & {
  connections: ConnectionName[];
  buckets: { bucket: BucketName; prefix: string; access: "read" | "readwrite" }[];
};
export type Topology = { services: ServiceSpec[]; migrations: { image: string } };

/** The platform's services. */
export const topology: Topology = {
  services: [
    {
      name: "gateway",
      kind: "http",
      image: "gateway",
      port: 8080,
      public: true,
      // Rate limits live in Redis; JWTs are verified locally against auth's JWKS.
      connections: ["cache"],
      buckets: [],
      calls: ["auth", "files", "reports"],
      scaling: { dev: { min: 1, max: 2 }, prod: { min: 2, max: 8 } },
      resources: { cpu: "250m", memory: "256Mi", memoryLimit: "512Mi" },
      gpu: false,
    },
    {
      name: "auth",
      kind: "http",
      image: "auth",
      port: 8081,
      connections: ["database", "cache"],
      buckets: [],
      calls: [],
      secrets: { SIGNING_KEY_SECRET: "auth/signing-key" },
      scaling: { dev: { min: 1, max: 2 }, prod: { min: 2, max: 6 } },
      // argon2id hashing (m = 19 MiB per hash) runs on worker threads: CPU and memory headroom.
      resources: { cpu: "500m", memory: "384Mi", memoryLimit: "768Mi" },
      gpu: false,
    },
    {
      name: "files",
      kind: "http",
      image: "files",
      port: 8082,
      // Tokens are verified here too (auth's JWKS), and revoked sessions are checked in Redis.
      connections: ["database", "cache", "broker"],
      buckets: [{ bucket: "uploads", prefix: "uploads/", access: "readwrite" }],
      calls: ["auth"],
      scaling: { dev: { min: 1, max: 2 }, prod: { min: 2, max: 8 } },
      // Uploads are streamed to S3: memory does not grow with file size.
      resources: { cpu: "250m", memory: "256Mi", memoryLimit: "512Mi" },
      gpu: false,
    },
    {
      name: "reports",
      kind: "http",
      image: "reports",
      port: 8083,
      // Reads go to the reader endpoint; tokens are verified against auth's JWKS, revocations checked in Redis.
      connections: ["database", "database-reader", "cache"],
      buckets: [
        { bucket: "uploads", prefix: "uploads/", access: "read" },
        { bucket: "reports", prefix: "reports/", access: "readwrite" },
      ],
      calls: ["auth"],
      scaling: { dev: { min: 1, max: 2 }, prod: { min: 2, max: 4 } },
      // PDF rendering holds the annotated images in memory.
      resources: { cpu: "500m", memory: "512Mi", memoryLimit: "1Gi" },
      gpu: false,
    },
    {
      name: "detector",
      kind: "worker",
      image: "detector",
      port: 9090,
      connections: ["database", "broker"],
      buckets: [
        { bucket: "uploads", prefix: "uploads/", access: "read" },
        { bucket: "models", prefix: "models/", access: "read" },
      ],
      calls: [],
      queue: "detections",
      // dev: KEDA scales to zero and the GPU node group follows; prod keeps two warm for K7.
      scaling: { dev: { min: 0, max: 2 }, prod: { min: 2, max: 6 } },
      resources: { cpu: "2", memory: "6Gi", memoryLimit: "8Gi" },
      gpu: true,
    },
  ],
  migrations: { image: "migrations" },
};

/** One problem with one service (or `topology` for the whole). */
export interface TopologyProblem {
  service: string;
  reason: string;
}

/** Thrown before any Kubernetes object is declared; its message names every service and problem, one per line. */
export class TopologyError extends Error {
  constructor(readonly problems: TopologyProblem[]) {
    super(`topology is invalid:\n${problems.map((problem) => `  - ${problem.service}: ${problem.reason}`).join("\n")}`);
    this.name = "TopologyError";
  }
}

export interface TopologyContext {
  /** The stack has a GPU node group that can scale above 0. */
  gpuNodes: boolean;
}

/** Checks a topology (parsed JSON or the literal above); returns it typed, or throws one TopologyError. */
export function validateTopology(input: unknown, context: TopologyContext): Topology {
  const problems = topologyProblems(input, context);
  if (problems.length > 0) throw new TopologyError(problems);
  return input as Topology;
}

/** Every problem of a topology; empty when it is valid. Pure, for tests and tools. */
export function topologyProblems(input: unknown, context: TopologyContext): TopologyProblem[] {
  const root = (typeof input === "object" && input !== null ? input : {}) as {
    services?: unknown;
    migrations?: unknown;
  };
  const services = Array.isArray(root.services) ? root.services : [];
  const problems: TopologyProblem[] = [];
  const nameOf = (service: unknown, index: number): string => {
    const name = (service as { name?: unknown } | null)?.name;
    return typeof name === "string" && name !== "" ? name : `services[${index}]`;
  };

  for (const error of shapeProblems(TopologySchema, { ...root, services: [] })) {
    if (error.path !== "services") problems.push({ service: "topology", reason: `${error.path}: ${error.reason}` });
  }
  if (services.length === 0) problems.push({ service: "topology", reason: "services: at least one service is needed" });
  const shaped: RawServiceSpec[] = [];
  services.forEach((service, index) => {
    const name = nameOf(service, index);
    const shape = shapeProblems(ServiceSpecSchema, service);
    for (const error of shape) problems.push({ service: name, reason: `${error.path}: ${error.reason}` });
    if (shape.length === 0) shaped.push(service as RawServiceSpec);
  });

  // Every named service counts as known, even one with shape problems: one problem is reported once, not cascaded.
  const names = new Set(services.map((service, index) => nameOf(service, index)));
  const seenNames = new Set<string>();
  const portOwners = new Map<number, string>();
  for (const service of shaped) {
    const fail = (reason: string) => problems.push({ service: service.name, reason });
    if (seenNames.has(service.name)) fail("the name is used by another service");
    seenNames.add(service.name);
    const owner = portOwners.get(service.port);
    if (owner) fail(`port ${service.port} clashes with ${owner}`);
    else portOwners.set(service.port, service.name);
    for (const connection of service.connections) {
      if (!(CONNECTIONS as readonly string[]).includes(connection)) {
        fail(`unknown connection "${connection}" (known: ${CONNECTIONS.join(", ")})`);
      }
    }
    for (const { bucket } of service.buckets) {
      if (!(BUCKETS as readonly string[]).includes(bucket)) {
        fail(`unknown connection: bucket "${bucket}" (known: ${BUCKETS.join(", ")})`);
      }
    }
    for (const callee of service.calls) {
      if (callee === service.name) fail("calls itself");
      else if (!names.has(callee))
        fail(`unknown connection: calls "${callee}", which is not a service of the topology`);
      else if (shaped.find((other) => other.name === callee)?.kind === "worker") fail(`calls "${callee}", a worker`);
    }
    if (service.gpu && !context.gpuNodes) fail("needs a GPU but the stack has no GPU node group (gpuNodes.maxSize 0)");
    if (service.kind === "worker") {
      if (!service.queue) fail("a worker needs the queue it consumes (queue)");
      if (!service.connections.includes("broker")) fail("a worker needs the broker connection");
      if (service.public) fail("a worker cannot be public");
    } else if (service.queue) {
      fail("queue is for workers only");
    }
    for (const environment of ["dev", "prod"] as const) {
      const { min, max } = service.scaling[environment];
      if (min > max) fail(`scaling.${environment}: min ${min} is above max ${max}`);
      if (service.kind === "http" && min < 1) fail(`scaling.${environment}: an http service needs min >= 1`);
    }
  }
  const publics = shaped.filter((service) => service.public);
  if (shaped.length === services.length && publics.length !== 1) {
    problems.push({
      service: "topology",
      reason: `exactly one service must be public (the ingress target), found ${publics.length}`,
    });
  }
  return problems;
}

function shapeProblems(schema: TSchema, value: unknown): { path: string; reason: string }[] {
  const seen = new Map<string, string>();
  for (const error of Value.Errors(schema, value)) {
    const path = error.path.split("/").slice(1).join(".") || "(root)";
    if (seen.has(path)) continue;
    seen.set(path, describe(error.message, error.schema, error.value, path));
  }
  return [...seen].map(([path, reason]) => ({ path, reason }));
}

function describe(message: string, schema: TSchema, value: unknown, path: string): string {
  const got = value === undefined ? "" : ` (got ${JSON.stringify(value)})`;
  if (message === "Expected required property") {
    return path === "image" ? "missing image (the ECR repository the service runs from)" : "missing required key";
  }
  if (message === "Unexpected property") return "unknown key";
  if (typeof schema.description === "string") return `must be ${schema.description}${got}`;
  return `${message.toLowerCase()}${got}`;
}

/** Every image the topology runs, once each: the Registry makes one ECR repository per image. */
export function imagesOf(topology: Topology): string[] {
  return [...new Set([...topology.services.map((service) => service.image), topology.migrations.image])];
}

/**
 * What a service gets for one service it calls, given that callee's origin: `<CALLEE>_URL`, and for auth also
 * `JWKS_URL`: services verify tokens themselves against auth's published keys (GUARDRAILS P2), so calling auth is
 * what gives a service those keys. The cloud (infra/k8s) and the local stack both wire callees through this.
 */
export function calleeVariables(callee: string, origin: string): Record<string, string> {
  const variables: Record<string, string> = { [`${callee.toUpperCase().replace(/-/g, "_")}_URL`]: origin };
  if (callee === "auth") variables.JWKS_URL = `${origin}/.well-known/jwks.json`;
  return variables;
}

/**
 * The only paths the internet reaches through the public service, an allow-list (path prefixes, by whole segments):
 * the API, the JWKS and the API docs. Everything else — `/metrics`, `/healthz`, `/readyz` — answers 404 at the edge:
 * probes and Prometheus are in-cluster, and an uptime check from outside should exercise a real API path, not the
 * liveness endpoint. The cloud's ingress and the local stack's TLS proxy both route by it.
 */
export const PUBLIC_PATHS = ["/api", "/.well-known", "/docs"] as const;

/** Whether a request path (query string allowed) is under one of PUBLIC_PATHS. */
export function isPublicPath(url: string): boolean {
  const path = url.split("?")[0] ?? "";
  return PUBLIC_PATHS.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}
