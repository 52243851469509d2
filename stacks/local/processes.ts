/**
 * The stack's child processes: each app runs from source, `node --import tsx apps/<app>/src/server.ts`, with its
 * output in `<data>/logs/<app>.log`. Each gets its own process group so the terminal's Ctrl-C reaches only
 * `npm start`, which then stops them in order (the gateway first, PostgreSQL last) instead of all at once; and each
 * stops by itself when `npm start` is gone without stopping it (killed), as its IPC channel closes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { probeReady } from "./proxy.js";

const EXIT_WITH_LAUNCHER = new URL("./exit-with-launcher.mjs", import.meta.url).href;

export class ChildExited extends Error {
  constructor(
    readonly app: string,
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly logFile: string,
    /** Why this exit ends the stack when an earlier one did not: the supervisor gave up (supervisor.ts). */
    context?: string,
  ) {
    super(
      `${app} exited ${howItEnded(code, signal)}` +
        (context ? ` ${context}` : "") +
        `; the stack stops. Its log ${logFile} ends with:\n${logTail(logFile)}`,
    );
    this.name = "ChildExited";
  }
}

/** How a process ended: `(code 1)`, `(signal SIGTERM)`, or for SIGKILL what it most likely was. */
export function howItEnded(code: number | null, signal: NodeJS.Signals | null): string {
  if (!signal) return `(code ${code})`;
  // nothing in the process could say why: it did not see it coming
  return signal === "SIGKILL"
    ? "(signal SIGKILL), killed from outside (kill -9, or the kernel out of memory)"
    : `(signal ${signal})`;
}

/** The last `lines` lines of `text`, indented and marked as quoted output. */
export function tail(text: string, lines = 12): string {
  return text
    .trim()
    .split("\n")
    .slice(-lines)
    .map((line) => `  | ${line}`)
    .join("\n");
}

export function logTail(file: string, lines = 15): string {
  try {
    return tail(readFileSync(file, "utf8"), lines);
  } catch {
    return "  | (no log)";
  }
}

export class AppProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stopping = false;

  constructor(
    readonly app: string,
    entry: string,
    env: Record<string, string>,
    readonly logFile: string,
    cwd: string,
    /** V8 and node flags before the entry (the app's image starts node with the same). */
    nodeFlags: readonly string[] = [],
  ) {
    const log = openSync(logFile, "a");
    try {
      this.child = spawn(process.execPath, [...nodeFlags, "--import", "tsx", "--import", EXIT_WITH_LAUNCHER, entry], {
        cwd,
        env,
        detached: true,
        // the IPC channel is how a service learns that `npm start` is gone (exit-with-launcher.mjs)
        stdio: ["ignore", log, log, "ipc"],
      });
    } finally {
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => resolve({ code, signal }));
      this.child.once("error", () => resolve({ code: null, signal: null }));
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get expectedExit(): boolean {
    return this.stopping;
  }

  /** Polls `origin/readyz` until 200; rejects when the process exits first or after `timeoutMs`. */
  async ready(origin: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      if (exited) {
        const { code, signal } = await this.exited;
        throw new ChildExited(this.app, code, signal, this.logFile);
      }
      if (await probeReady(origin, 1_000)) return;
      if (Date.now() > deadline) {
        throw new Error(
          `${this.app} was not ready within ${timeoutMs / 1000} s; its log ${this.logFile} ends with:\n${logTail(this.logFile)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** SIGTERM (the service drains), then SIGKILL after `graceMs`: the stack stops it. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await this.terminate(graceMs);
  }

  /** As `stop`, but its exit still counts as one the stack did not ask for (a restart that never got ready). */
  async terminate(graceMs: number): Promise<void> {
    if (this.running) this.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (this.running) this.child.kill("SIGKILL");
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.stopping = true;
    if (this.running) this.child.kill("SIGKILL");
  }
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port the kernel considers free now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
