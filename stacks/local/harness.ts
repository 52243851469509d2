/**
 * Test harness: `npm start` as a child process (the same command a developer runs, `node --import tsx
 * stacks/local/main.ts`) on free ports in a data directory of the test's, with its output captured.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ApiClient } from "./client.js";
import { REPO_ROOT } from "./paths.js";

export interface RunningStack {
  url: string;
  ca: string;
  api: ApiClient;
  child: ChildProcess;
  output(): string;
  /** SIGINT (Ctrl-C) and the exit code. */
  stop(): Promise<number | null>;
}

export interface StackRun {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const launched = new Set<ChildProcess>();
// a test that failed half-way must not leave a stack running: SIGTERM lets each stop its services and PostgreSQL
process.once("exit", () => {
  for (const child of launched) if (child.exitCode === null) child.kill("SIGTERM");
});

/** Stops every stack this process launched that still runs (for an `afterAll`). */
export async function stopAllStacks(): Promise<void> {
  await Promise.all(
    [...launched].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
    }),
  );
}

/** CONTRACTS §1 overrides that would turn an embedded dependency real: a test passes them itself, or none. */
const OVERRIDES = ["DATABASE_URL", "REDIS_URL", "AMQP_URL", "S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"];

function inheritedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of OVERRIDES) delete env[name];
  return env;
}

/** Launches the stack; resolve `exited` for a run expected to fail. */
export function launchStack(dataDir: string, env: Record<string, string> = {}): StackRun {
  const child = spawn(process.execPath, ["--import", "tsx", "stacks/local/main.ts"], {
    cwd: REPO_ROOT,
    env: { ...inheritedEnv(), NDT_DATA_DIR: dataDir, PORT: "0", NDT_FREE_PORTS: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  launched.add(child);
  child.once("exit", () => launched.delete(child));
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => text, exited };
}

export interface StartOptions {
  /** How long the stack may take to print its report. @default 150000 */
  readyTimeoutMs?: number;
  /** The API client's limit on a request without a byte. @default 30000 (ApiClient's) */
  requestTimeoutMs?: number;
}

/** Launches the stack and waits for its report; rejects with its output when it exits first. */
export async function startStack(
  dataDir: string,
  env: Record<string, string> = {},
  { readyTimeoutMs: timeoutMs = 150_000, requestTimeoutMs }: StartOptions = {},
): Promise<RunningStack> {
  const run = launchStack(dataDir, env);
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  let exitedWith: number | null | undefined;
  void run.exited.then((code) => (exitedWith = code));
  while (!url) {
    if (exitedWith !== undefined) throw new Error(`the stack exited (${exitedWith}) before ready:\n${run.output()}`);
    if (Date.now() > deadline) {
      run.child.kill("SIGINT");
      throw new Error(`the stack was not ready within ${timeoutMs / 1000} s:\n${run.output()}`);
    }
    url = /API\s+(https:\/\/localhost:\d+)/.exec(run.output())?.[1];
    await new Promise((r) => setTimeout(r, 200));
  }
  const ca = await readFile(join(dataDir, "tls", "cert.pem"), "utf8");
  const api = new ApiClient(url, ca, requestTimeoutMs);
  return {
    url,
    ca,
    api,
    child: run.child,
    output: run.output,
    async stop() {
      api.close();
      if (run.child.exitCode === null) run.child.kill("SIGINT");
      return run.exited;
    },
  };
}
