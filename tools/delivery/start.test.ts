/**
 * Each app's production build runs: for every apps/<app> with a src/server.ts (picked up as apps appear), the build
 * step the image runs (`npm run build` → tools/delivery/build.ts → apps/<app>/dist/server.js), then the image's
 * command (`node --enable-source-maps dist/server.js` from apps/<app>, NODE_ENV=production) on a free port: GET
 * /healthz answers 200, and SIGTERM ends the process with exit code 0 within the shutdown bound. So the images run
 * what the tests ran.
 *
 * The env comes from the app's own config schema (apps/<app>/src/config.ts, `*ConfigSchema`): every required
 * variable without a default must have a value below — a new variable fails here, by name, until it gets one.
 * PostgreSQL (a fresh database) and Redis (a unique key prefix) come from @ndt/kit/testing: unreachable means a
 * failure under CI=true, a printed skip otherwise.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import type { TObject } from "@sinclair/typebox";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import { afterEach, describe, expect, it } from "vitest";
import { appConfigSchemaOf } from "./app-config-schema.js";
import { buildableApps, buildApp, REPO_ROOT } from "./build.js";

/** Bound given to the service for its graceful shutdown (SHUTDOWN_TIMEOUT_MS); the exit must come within it. */
const SHUTDOWN_TIMEOUT_MS = 5_000;
const START_TIMEOUT_MS = 30_000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The env the image would get from the pod spec, for the variables the schema requires. */
async function envFor(app: string, schema: TObject | undefined): Promise<Record<string, string> | undefined> {
  const env: Record<string, string> = {};
  // REDIS_URL is optional in the schema (CACHE_BACKEND=postgres needs none) but the default backend needs it.
  const conditionallyRequired = ["REDIS_URL"].filter((name) => schema?.properties[name] !== undefined);
  const required = [
    ...new Set([
      ...(schema?.required ?? []).filter((name) => schema?.properties[name]?.default === undefined),
      ...conditionallyRequired,
    ]),
  ];
  const unknown: string[] = [];
  for (const name of required) {
    const pattern = schema?.properties[name]?.pattern ?? "";
    if (name === "DATABASE_URL") {
      const db = await testDatabase(`start_${app}`);
      if (!db) return undefined;
      cleanups.push(() => db.drop());
      env.DATABASE_URL = db.url;
    } else if (name === "REDIS_URL") {
      const kv = await testRedis(`start_${app}`);
      if (!kv) return undefined;
      cleanups.push(() => kv.cleanup());
      env.REDIS_URL = kv.url;
      env.REDIS_KEY_PREFIX = kv.prefix;
    } else if (name === "SIGNING_KEY_SECRET") {
      env[name] = randomBytes(32).toString("hex");
    } else if (name.endsWith("_BUCKET") || name.startsWith("S3_BUCKET_")) {
      // a bucket name only: a service does not touch S3 to start
      env[name] = `ndt-start-${app}`;
    } else if (pattern.startsWith("^https?://")) {
      // an upstream origin: nothing listens there, and /healthz must not depend on it
      env[name] = "http://127.0.0.1:9";
    } else {
      unknown.push(name);
    }
  }
  if (unknown.length > 0)
    throw new Error(`${app} requires ${unknown.join(", ")}: give each a value in tools/delivery/start.test.ts envFor`);
  return env;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** Relative `new URL("…", import.meta.url)` targets in the bundle that do not exist beside it. */
function missingUrlTargets(distDir: string): string[] {
  const missing: string[] = [];
  for (const file of readdirSync(distDir, { recursive: true, encoding: "utf8" })) {
    if (!/\.m?js$/.test(file)) continue;
    const code = readFileSync(path.join(distDir, file), "utf8");
    for (const match of code.matchAll(/new URL\(\s*["'](\.{1,2}\/[^"']+)["']\s*,\s*import\.meta\.url\s*\)/g)) {
      const target = path.resolve(path.dirname(path.join(distDir, file)), match[1] ?? "");
      if (!existsSync(target)) missing.push(`${file}: ${match[1]}`);
    }
  }
  return missing;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `"ndt": {"kind": "job"}` in the app's package.json: a run-to-completion Job (migrations), not a server. */
function isJob(app: string): boolean {
  const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, "apps", app, "package.json"), "utf8")) as {
    ndt?: { kind?: string };
  };
  return manifest.ndt?.kind === "job";
}

describe("production build: build step, then the image's command", () => {
  const apps = buildableApps().filter((app) => !isJob(app));
  const jobs = buildableApps().filter(isJob);

  it("finds the apps with a src/server.ts", () => {
    expect(apps).toEqual(expect.arrayContaining(["auth", "gateway", "files"]));
    expect(jobs).toEqual(["migrations"]);
  });

  it.for(jobs)("%s: runs to completion with exit 0, and again (idempotent)", { timeout: 90_000 }, async (app, ctx) => {
    const appDir = path.join(REPO_ROOT, "apps", app);
    const distDir = path.join(appDir, "dist");
    cleanups.push(() => rmSync(distDir, { recursive: true, force: true }));
    const env = await envFor(app, await appConfigSchemaOf(app));
    if (!env) return ctx.skip();
    await buildApp(app);
    expect(missingUrlTargets(distDir)).toEqual([]);
    const run = () =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, ["--enable-source-maps", "dist/server.js"], {
          cwd: appDir,
          env: { PATH: process.env.PATH ?? "", NODE_ENV: "production", HOME: process.env.HOME ?? "/tmp", ...env },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.once("exit", (code) => resolve({ code, output }));
      });
    const first = await run();
    expect(first.code, first.output).toBe(0);
    expect(first.output).toContain("migrations complete");
    const second = await run();
    expect(second.code, second.output).toBe(0);

    const bad = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ["dist/server.js"], {
        cwd: appDir,
        env: { PATH: process.env.PATH ?? "", DATABASE_URL: "mysql://nope" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.once("exit", (code) => resolve({ code, output }));
    });
    expect(bad.code).toBe(1);
    expect(bad.output).toContain("DATABASE_URL");
  });

  it.for(apps)(
    "%s: starts, answers GET /healthz with 200, exits 0 on SIGTERM",
    { timeout: 90_000 },
    async (app, ctx) => {
      const appDir = path.join(REPO_ROOT, "apps", app);
      const distDir = path.join(appDir, "dist");
      cleanups.push(() => rmSync(distDir, { recursive: true, force: true }));
      const env = await envFor(app, await appConfigSchemaOf(app));
      if (!env) return ctx.skip();

      const build = await buildApp(app);
      expect(build.outfile).toBe(path.join(distDir, "server.js"));
      expect(missingUrlTargets(distDir)).toEqual([]);

      const port = await freePort();
      const child: ChildProcess = spawn(process.execPath, ["--enable-source-maps", "dist/server.js"], {
        cwd: appDir,
        env: {
          PATH: process.env.PATH ?? "",
          NODE_ENV: "production",
          HOME: process.env.HOME ?? "/tmp",
          HOST: "127.0.0.1",
          PORT: String(port),
          LOG_LEVEL: "warn",
          SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
          SHUTDOWN_DELAY_MS: "0",
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
      let exit: Exit | undefined;
      void exited.then((e) => (exit = e));
      cleanups.push(() => {
        if (!exit) child.kill("SIGKILL");
      });

      const url = `http://127.0.0.1:${port}/healthz`;
      let status = 0;
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (status !== 200 && !exit && Date.now() < deadline) {
        status = await fetch(url, { signal: AbortSignal.timeout(1_000) })
          .then((res) => res.status)
          .catch(() => 0);
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status, `GET /healthz of ${app}; exit ${JSON.stringify(exit)}; output:\n${output}`).toBe(200);

      const stoppedAt = Date.now();
      child.kill("SIGTERM");
      const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), SHUTDOWN_TIMEOUT_MS + 2_000));
      const result = await Promise.race([exited, timeout]);
      expect(result, `${app} after SIGTERM; output:\n${output}`).toEqual({ code: 0, signal: null });
      expect(Date.now() - stoppedAt).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    },
  );
});
