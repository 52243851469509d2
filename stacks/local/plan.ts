/**
 * The local stack's plan: which processes to start, in which order, with which environment — derived from the
 * topology (stacks/topology.ts), never from a second list. Pure: no I/O, so the rules are unit-tested.
 *
 * The env a service gets mirrors what infra/k8s/workload.ts `wireConnections` gives it in the cloud (DATABASE_URL,
 * DATABASE_READER_URL, REDIS_URL, AMQP_URL, S3_BUCKET_<BUCKET>, S3_PREFIX_<BUCKET>), with the local endpoints, plus
 * the switches of kit's embedded adapters (CACHE_BACKEND, QUEUE_BACKEND, OBJECT_STORE) where the service knows them.
 */
import { calleeVariables, type ServiceSpec, type Topology } from "../topology.js";

/** What backs each port of the stack: the embedded default or a real server the user pointed at (CONTRACTS §1). */
export interface Backends {
  /** postgres://… of the database every service shares (embedded PostgreSQL or DATABASE_URL). */
  databaseUrl: string;
  /** `embedded`: kit's PostgreSQL-backed cache; otherwise the Redis URL. */
  cache: { kind: "embedded" } | { kind: "real"; url: string };
  /** `embedded`: kit's PostgreSQL-backed queue; otherwise the AMQP URL. */
  queue: { kind: "embedded" } | { kind: "real"; url: string };
  objects:
    | { kind: "directory"; dir: string }
    | { kind: "s3"; endpoint: string; accessKeyId: string; secretAccessKey: string; region: string };
}

export interface ServicePlan {
  spec: ServiceSpec;
  /** Where it listens (http) or serves metrics and health (worker). */
  port: number;
  env: Record<string, string>;
}

export interface PlanInput {
  topology: Topology;
  backends: Backends;
  /**
   * The port of each service started here (the topology's, or a free one when that is taken). Services without
   * one (NDT_SKIP, or no app yet) are not planned, but the rest still see the whole topology (its queue names).
   */
  ports: ReadonlyMap<string, number>;
  /** Secrets by env name (SIGNING_KEY_SECRET, …), generated once per data directory. */
  secrets: Readonly<Record<string, string>>;
  /** Per data directory: keeps stacks that share a real Redis or RabbitMQ apart (`a1b2c3d4`). */
  stackId: string;
  logLevel?: string;
}

/** Bucket names of the local stack (one namespace: the object store is private to the stack). */
export function bucketName(bucket: string): string {
  return `ndt-${bucket}`;
}

/** The name of a worker queue on a shared real broker: isolated per stack so two local stacks never steal jobs. */
export function queueName(queue: string, backends: Backends, stackId: string): string {
  return backends.queue.kind === "real" ? `${queue}-local-${stackId}` : queue;
}

/**
 * Start order: every service after the services it calls, the public one (the gateway) last, otherwise the
 * topology's order. Grouped in waves: a wave starts once every service of the previous waves is ready.
 * @throws Error on a cycle of `calls` (validateTopology does not reject one).
 */
export function startWaves(topology: Topology): ServiceSpec[][] {
  const byName = new Map(topology.services.map((service) => [service.name, service]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (service: ServiceSpec): number => {
    const known = depth.get(service.name);
    if (known !== undefined) return known;
    if (visiting.has(service.name)) throw new Error(`topology: calls form a cycle through ${service.name}`);
    visiting.add(service.name);
    const callees = service.calls.map((name) => byName.get(name)).filter((s): s is ServiceSpec => s !== undefined);
    const own = Math.max(-1, ...callees.map(depthOf)) + 1;
    visiting.delete(service.name);
    depth.set(service.name, own);
    return own;
  };
  topology.services.forEach(depthOf);
  const deepest = Math.max(0, ...depth.values());
  const waves: ServiceSpec[][] = [];
  for (const service of topology.services) {
    // the public entry opens last, after everything it could route to
    const wave = service.public ? deepest + 1 : (depth.get(service.name) ?? 0);
    (waves[wave] ??= []).push(service);
  }
  return waves.filter((wave) => wave !== undefined && wave.length > 0);
}

/** The environment of one service, from its topology entry and the stack's backends. */
export function serviceEnv(spec: ServiceSpec, input: PlanInput): Record<string, string> {
  const { backends, topology, ports, stackId } = input;
  const urlOf = (name: string) => `http://127.0.0.1:${ports.get(name)}`;
  const env: Record<string, string> = {
    HOST: "127.0.0.1",
    PORT: String(ports.get(spec.name)),
    LOG_LEVEL: input.logLevel ?? "info",
    // the embedded PostgreSQL is shared by one machine's processes: small pools
    DATABASE_POOL_MAX: "5",
  };
  const has = (name: string) => (spec.connections as readonly string[]).includes(name);

  // the embedded cache and queue live in PostgreSQL: a service using them needs the database even when its
  // topology entry does not name it
  const usesDatabase =
    has("database") ||
    has("database-reader") ||
    (has("cache") && backends.cache.kind === "embedded") ||
    (has("broker") && backends.queue.kind === "embedded");
  if (usesDatabase) env.DATABASE_URL = backends.databaseUrl;
  if (has("database-reader")) env.DATABASE_READER_URL = backends.databaseUrl;

  if (has("cache")) {
    if (backends.cache.kind === "embedded") env.CACHE_BACKEND = "postgres";
    else {
      env.CACHE_BACKEND = "redis";
      env.REDIS_URL = backends.cache.url;
      env.REDIS_KEY_PREFIX = `ndt-local-${stackId}:`;
    }
  }
  if (has("broker")) {
    if (backends.queue.kind === "embedded") env.QUEUE_BACKEND = "postgres";
    else {
      env.QUEUE_BACKEND = "amqp";
      env.AMQP_URL = backends.queue.url;
    }
    for (const worker of topology.services) {
      if (worker.queue)
        env[`${worker.queue.toUpperCase().replace(/-/g, "_")}_QUEUE`] = queueName(worker.queue, backends, stackId);
    }
  }

  if (spec.buckets.length > 0) {
    const objects = backends.objects;
    if (objects.kind === "directory") {
      env.OBJECT_STORE = "directory";
      env.OBJECT_STORE_DIR = objects.dir;
    } else {
      env.OBJECT_STORE = "s3";
      env.S3_ENDPOINT = objects.endpoint;
      env.S3_REGION = objects.region;
      env.AWS_REGION = objects.region;
      env.S3_ACCESS_KEY_ID = objects.accessKeyId;
      env.S3_SECRET_ACCESS_KEY = objects.secretAccessKey;
      env.S3_FORCE_PATH_STYLE = "true";
    }
    for (const { bucket, prefix } of spec.buckets) {
      env[`S3_BUCKET_${bucket.toUpperCase()}`] = bucketName(bucket);
      env[`S3_PREFIX_${bucket.toUpperCase()}`] = prefix;
    }
    // a service with one bucket it writes may read it from S3_BUCKET (apps/files does)
    const main = spec.buckets.find((grant) => grant.access === "readwrite") ?? spec.buckets[0];
    if (main) env.S3_BUCKET = bucketName(main.bucket);
  }

  // a callee that is not running here (NDT_SKIP) gets no URL: the service says so itself if it needs one
  for (const callee of spec.calls) if (ports.has(callee)) Object.assign(env, calleeVariables(callee, urlOf(callee)));
  for (const variable of Object.keys(spec.secrets ?? {})) {
    const secret = input.secrets[variable];
    if (secret === undefined) throw new Error(`no local secret for ${spec.name}'s ${variable}`);
    env[variable] = secret;
  }
  // no GPU on a developer's machine: the bundled model runs on the CPU
  if (spec.gpu) env.ORT_PROVIDERS = "cpu";
  // every service is reached through a proxy on this machine (the TLS proxy before the gateway, the gateway before
  // the rest): trust its x-forwarded-for, as the cloud trusts the VPC's
  env.TRUST_PROXY = "127.0.0.1";
  return env;
}

/** The plan of every service that has a port, in start waves. */
export function planServices(input: PlanInput): ServicePlan[][] {
  return startWaves(input.topology)
    .map((wave) =>
      wave.flatMap((spec) => {
        const port = input.ports.get(spec.name);
        return port === undefined ? [] : [{ spec, port, env: serviceEnv(spec, input) }];
      }),
    )
    .filter((wave) => wave.length > 0);
}

/**
 * Settings whose cloud default assumes what does not hold on a developer's machine, given to each service whose
 * config declares them unless the user's environment sets them.
 *
 * REGISTER_MAX_PER_IP: the stack serves 127.0.0.1 alone, so every client — each `npm run demo`, each script or
 * curl of the developer — is the one address, and auth's per-address limit (10 an hour, against sign-up abuse
 * from the internet) would refuse the 11th demo of the hour. Locally it bounds only a runaway loop.
 */
export const LOCAL_DEFAULTS: Readonly<Record<string, string>> = {
  REGISTER_MAX_PER_IP: "1000",
};

/**
 * A service's environment: the local defaults it declares (`variables`, from its config schema), then the user's
 * environment less the stack's own settings (PORT, HOST, NDT_*), then the plan's wiring, each over the one before.
 */
export function launchEnv(
  user: Readonly<Record<string, string | undefined>>,
  plan: Readonly<Record<string, string>>,
  variables: ReadonlySet<string> | undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(LOCAL_DEFAULTS)) if (variables?.has(key)) env[key] = value;
  for (const [key, value] of Object.entries(user)) {
    if (value === undefined || key === "PORT" || key === "HOST" || key.startsWith("NDT_")) continue;
    env[key] = value;
  }
  return { ...env, ...plan };
}
