import { describe, expect, it } from "vitest";
import { type Topology, topology } from "../topology.js";
import { type Backends, LOCAL_DEFAULTS, launchEnv, planServices, startWaves } from "./plan.js";
import { checkBackendSwitches } from "./stack.js";

const embedded: Backends = {
  databaseUrl: "postgres://ndt:pw@127.0.0.1:5999/ndt",
  cache: { kind: "embedded" },
  queue: { kind: "embedded" },
  objects: { kind: "directory", dir: "/data/objects" },
};
const real: Backends = {
  databaseUrl: "postgres://ndt:pw@127.0.0.1:5999/ndt",
  cache: { kind: "real", url: "redis://127.0.0.1:6379" },
  queue: { kind: "real", url: "amqp://guest:guest@127.0.0.1:5672" },
  objects: {
    kind: "s3",
    endpoint: "http://127.0.0.1:9000",
    accessKeyId: "a",
    secretAccessKey: "b",
    region: "us-east-1",
  },
};
const ports = new Map(topology.services.map((service) => [service.name, service.port + 1000]));
const secrets = Object.fromEntries(
  topology.services.flatMap((service) => Object.keys(service.secrets ?? {}).map((name) => [name, `secret-${name}`])),
);
const planOf = (backends: Backends) =>
  new Map(
    planServices({ topology, backends, ports, secrets, stackId: "abcd1234" })
      .flat()
      .map((plan) => [plan.spec.name, plan]),
  );

describe("the local stack's plan, derived from the topology", () => {
  it("starts every service of the topology once, each after the services it calls and the public one last", () => {
    const waves = startWaves(topology).map((wave) => wave.map((service) => service.name));
    expect(waves.flat().sort()).toEqual(topology.services.map((service) => service.name).sort());
    const waveOf = (name: string) => waves.findIndex((wave) => wave.includes(name));
    for (const service of topology.services) {
      for (const callee of service.calls) expect(waveOf(callee)).toBeLessThan(waveOf(service.name));
    }
    const publicName = topology.services.find((service) => service.public)?.name;
    expect(waves.at(-1)).toEqual([publicName]);
  });

  it("rejects calls that form a cycle instead of looping", () => {
    const [first, second] = topology.services;
    if (!first || !second) throw new Error("topology too small");
    const cyclic: Topology = {
      ...topology,
      services: [
        { ...first, calls: [second.name] },
        { ...second, calls: [first.name] },
      ],
    };
    expect(() => startWaves(cyclic)).toThrow(/cycle/);
  });

  it("gives each service its topology port, the URL of each service it calls and auth's JWKS", () => {
    const plans = planOf(embedded);
    for (const service of topology.services) {
      const plan = plans.get(service.name);
      expect(plan?.env.PORT).toBe(String(service.port + 1000));
      expect(plan?.env.HOST).toBe("127.0.0.1");
      // each is reached through a proxy on this machine (the TLS proxy, the gateway) whose x-forwarded-for it trusts
      expect(plan?.env.TRUST_PROXY).toBe("127.0.0.1");
      for (const callee of service.calls) {
        expect(plan?.env[`${callee.toUpperCase()}_URL`]).toBe(`http://127.0.0.1:${ports.get(callee)}`);
      }
      // the cloud's rule (infra/k8s calleeEnv): the keys come with calling auth, and only with it
      expect(plan?.env.JWKS_URL).toBe(
        service.calls.includes("auth") ? `http://127.0.0.1:${ports.get("auth")}/.well-known/jwks.json` : undefined,
      );
    }
  });

  it("switches every service to the embedded adapters, which live in the embedded PostgreSQL", () => {
    for (const [name, plan] of planOf(embedded)) {
      const spec = topology.services.find((service) => service.name === name);
      if (!spec) throw new Error(name);
      if (spec.connections.includes("cache")) expect(plan.env.CACHE_BACKEND).toBe("postgres");
      if (spec.connections.includes("broker")) expect(plan.env.QUEUE_BACKEND).toBe("postgres");
      if (spec.connections.length > 0) expect(plan.env.DATABASE_URL).toBe(embedded.databaseUrl);
      if (spec.buckets.length > 0) {
        expect(plan.env.OBJECT_STORE).toBe("directory");
        expect(plan.env.OBJECT_STORE_DIR).toBe("/data/objects");
      }
      expect(plan.env.REDIS_URL).toBeUndefined();
      expect(plan.env.AMQP_URL).toBeUndefined();
    }
  });

  it("points at the real servers when they are given, keeping stacks apart on a shared Redis and RabbitMQ", () => {
    const plans = planOf(real);
    const gateway = plans.get("gateway");
    expect(gateway?.env.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(gateway?.env.REDIS_KEY_PREFIX).toBe("ndt-local-abcd1234:");
    expect(gateway?.env.TRUST_PROXY).toBe("127.0.0.1");
    const workers = topology.services.filter((service) => service.queue);
    expect(workers.length).toBeGreaterThan(0);
    for (const [name, plan] of plans) {
      const spec = topology.services.find((service) => service.name === name);
      if (!spec?.connections.includes("broker")) continue;
      expect(plan.env.AMQP_URL).toBe("amqp://guest:guest@127.0.0.1:5672");
      for (const worker of workers) {
        expect(plan.env[`${worker.queue?.toUpperCase()}_QUEUE`]).toBe(`${worker.queue}-local-abcd1234`);
      }
    }
    for (const [name, plan] of plans) {
      const spec = topology.services.find((service) => service.name === name);
      for (const grant of spec?.buckets ?? []) {
        expect(plan.env[`S3_BUCKET_${grant.bucket.toUpperCase()}`]).toBe(`ndt-${grant.bucket}`);
        expect(plan.env.S3_ENDPOINT).toBe("http://127.0.0.1:9000");
        expect(plan.env.S3_FORCE_PATH_STYLE).toBe("true");
      }
    }
  });

  it("plans only the services started here, and keeps a skipped worker's queue name in its publishers' env", () => {
    const workers = topology.services.filter((service) => service.queue);
    const started = new Map([...ports].filter(([name]) => !workers.some((worker) => worker.name === name)));
    const plans = planServices({ topology, backends: real, ports: started, secrets, stackId: "abcd1234" }).flat();
    expect(plans.map((plan) => plan.spec.name).sort()).toEqual([...started.keys()].sort());
    const publishers = plans.filter((plan) => plan.spec.connections.includes("broker"));
    expect(publishers.length).toBeGreaterThan(0);
    for (const plan of publishers) {
      for (const worker of workers) {
        expect(plan.env[`${worker.queue?.toUpperCase()}_QUEUE`]).toBe(`${worker.queue}-local-abcd1234`);
      }
    }
  });

  it("runs GPU services on the CPU and hands out the stack's secrets", () => {
    const plans = planOf(embedded);
    for (const service of topology.services) {
      if (service.gpu) expect(plans.get(service.name)?.env.ORT_PROVIDERS).toBe("cpu");
      for (const variable of Object.keys(service.secrets ?? {})) {
        expect(plans.get(service.name)?.env[variable]).toBe(`secret-${variable}`);
      }
    }
  });

  it("names, before anything starts, a service whose config schema lacks a switch the embedded defaults need", () => {
    const switches = new Set(["CACHE_BACKEND", "QUEUE_BACKEND", "OBJECT_STORE"]);
    const all = new Map<string, ReadonlySet<string> | undefined>(topology.services.map((s) => [s.name, switches]));
    expect(() => checkBackendSwitches(topology.services, all)).not.toThrow();
    const broker = topology.services.find((service) => service.connections.includes("broker"));
    if (!broker) throw new Error("the topology has no broker user");
    const lacking = new Map(all).set(broker.name, new Set(["CACHE_BACKEND", "OBJECT_STORE"]));
    expect(() => checkBackendSwitches(topology.services, lacking)).toThrow(
      `${broker.name}: no QUEUE_BACKEND in its config schema`,
    );
    const unknown = new Map(all).set(broker.name, undefined);
    expect(() => checkBackendSwitches(topology.services, unknown)).toThrow(/no CACHE_BACKEND|no QUEUE_BACKEND/);
  });
});

describe("a service's environment: local defaults, then the user's, then the plan's wiring", () => {
  const declares = new Set(["REGISTER_MAX_PER_IP", "DATABASE_URL"]);

  it("lets auth register more than 10 an hour from 127.0.0.1, the one address every local client has", async () => {
    const { AuthConfigSchema } = await import("../../apps/auth/src/config.js");
    // the variable the local default sets is auth's, and the local value lies above auth's cloud default
    const declared = new Set(Object.keys(AuthConfigSchema.properties));
    const cloudDefault = AuthConfigSchema.properties.REGISTER_MAX_PER_IP.default as number;
    const env = launchEnv({}, { PORT: "8081" }, declared);
    expect(Number(env.REGISTER_MAX_PER_IP)).toBeGreaterThan(cloudDefault);
    expect(env).toMatchObject({ PORT: "8081" });
  });

  it("gives a local default only to a service that declares it, and never over the user's own setting", () => {
    expect(launchEnv({}, {}, new Set(["DATABASE_URL"]))).toEqual({});
    expect(launchEnv({}, {}, undefined)).toEqual({});
    expect(launchEnv({ REGISTER_MAX_PER_IP: "10" }, {}, declares).REGISTER_MAX_PER_IP).toBe("10");
  });

  it("passes the user's environment less the stack's own settings, under the plan's wiring", () => {
    const env = launchEnv(
      {
        PATH: "/bin",
        PORT: "8443",
        HOST: "0.0.0.0",
        NDT_DATA_DIR: "/d",
        DATABASE_URL: "postgres://theirs",
        X: undefined,
      },
      { PORT: "8081", HOST: "127.0.0.1", DATABASE_URL: "postgres://planned" },
      declares,
    );
    expect(env).toEqual({
      PATH: "/bin",
      PORT: "8081",
      HOST: "127.0.0.1",
      DATABASE_URL: "postgres://planned",
      REGISTER_MAX_PER_IP: LOCAL_DEFAULTS.REGISTER_MAX_PER_IP,
    });
  });
});
