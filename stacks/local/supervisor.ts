/**
 * Keeps a service of the local stack running, as its pod's restart policy does in the cloud: a service that exits
 * on its own after it was ready is started again after a backoff (0.5 s, doubling to 10 s; back to 0.5 s once a run
 * has stayed up for 30 s), with one line saying so. One that keeps crashing (it exits again after 5 restarts within
 * 60 s) is given up on, and the stack stops with how it ended and the end of its log, as it did before there were
 * restarts.
 *
 * A service whose first run never got ready is not restarted: that is a bug or a bad setting, and `npm start`
 * names it at once instead of after a minute of retries. A stop (Ctrl-C) restarts nothing.
 */
import { type AppProcess, ChildExited, howItEnded } from "./processes.js";

export interface RestartPolicy {
  /** The wait before the first restart. */
  initialDelayMs: number;
  /** The wait doubles with each restart up to this. */
  maxDelayMs: number;
  /** A run that stayed up this long after it was ready sets the wait back to `initialDelayMs`. */
  stableMs: number;
  /** Restarts allowed within `windowMs`; the next exit in that window stops the stack. */
  maxRestarts: number;
  windowMs: number;
  /** A restarted run not ready by then is stopped and counts as a failed restart. */
  readyTimeoutMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 500,
  maxDelayMs: 10_000,
  stableMs: 30_000,
  maxRestarts: 5,
  windowMs: 60_000,
  // as long as a first start may take (a cold tsx cache on a slow machine)
  readyTimeoutMs: 90_000,
};

export interface SupervisedOptions {
  name: string;
  /** Where its /readyz answers: `http://127.0.0.1:<port>`. */
  origin: string;
  /** Starts one run of the service. */
  launch: () => AppProcess;
  /** A line for the person running the stack. */
  print: (line: string) => void;
  /** Called once, when the service crash-loops (or cannot be launched again): the stack stops. */
  giveUp: (err: Error) => void;
  policy?: Partial<RestartPolicy>;
}

export class Supervised {
  private run: AppProcess;
  private readonly policy: RestartPolicy;
  private stopping = false;
  private readonly stopped = new AbortController();
  /** When each restart within the window happened. */
  private readonly restarts: number[] = [];
  private delayMs: number;
  private readySince: number | undefined;
  /** Restarts so far, for the lines it prints. */
  private restartCount = 0;

  constructor(private readonly options: SupervisedOptions) {
    this.policy = { ...DEFAULT_RESTART_POLICY, ...options.policy };
    this.delayMs = this.policy.initialDelayMs;
    this.run = options.launch();
  }

  /** The current run. */
  get process(): AppProcess {
    return this.run;
  }

  /**
   * Waits until the first run answers /readyz (rejects as `AppProcess.ready` does: it exited, or not in time);
   * from then on an exit of the service is a crash to restart from.
   */
  async ready(timeoutMs: number): Promise<void> {
    await this.run.ready(this.options.origin, timeoutMs);
    this.readySince = Date.now();
    // a restart that cannot even be launched (its log unwritable) stops the stack as a crash loop does
    void this.supervise().catch((err: unknown) =>
      this.options.giveUp(err instanceof Error ? err : new Error(String(err))),
    );
  }

  private async supervise(): Promise<void> {
    const { name, origin, print } = this.options;
    const { windowMs, maxRestarts } = this.policy;
    for (;;) {
      const run = this.run;
      const { code, signal } = await run.exited;
      if (this.stopping) return;
      const now = Date.now();
      if (this.readySince !== undefined && now - this.readySince >= this.policy.stableMs) {
        this.delayMs = this.policy.initialDelayMs;
      }
      this.readySince = undefined;
      while (this.restarts.length > 0 && (this.restarts[0] ?? 0) <= now - windowMs) this.restarts.shift();
      if (this.restarts.length >= maxRestarts) {
        this.options.giveUp(
          new ChildExited(
            name,
            code,
            signal,
            run.logFile,
            `again after ${this.restarts.length} restarts within ${windowMs / 1000} s: it keeps crashing`,
          ),
        );
        return;
      }
      const delayMs = this.delayMs;
      this.delayMs = Math.min(delayMs * 2, this.policy.maxDelayMs);
      this.restartCount += 1;
      print(
        `  ↻ ${name} exited ${howItEnded(code, signal)}; restart ${this.restartCount} in ${delayMs / 1000} s. ` +
          `Its log: ${run.logFile}`,
      );
      if (!(await this.wait(delayMs))) return;
      this.restarts.push(Date.now());
      this.run = this.options.launch();
      try {
        await this.run.ready(origin, this.policy.readyTimeoutMs);
        this.readySince = Date.now();
        print(`  ✓ ${name} ready again on ${origin.replace(/^http:\/\//, "")} (restart ${this.restartCount})`);
      } catch {
        // exited before it was ready: the next turn restarts it; not ready in time: stopped here, then the same
        if (this.run.running && !this.stopping) {
          print(`  ✗ ${name} was not ready within ${this.policy.readyTimeoutMs / 1000} s of its restart; stopping it`);
          await this.run.terminate(20_000);
        }
      }
    }
  }

  /** Resolves true after `ms`, false at once when the stack stops meanwhile. */
  private wait(ms: number): Promise<boolean> {
    if (this.stopped.signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.stopped.signal.removeEventListener("abort", onAbort);
        resolve(!this.stopping);
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      this.stopped.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** From now on an exit is final: a restart waiting for its turn is dropped. */
  noMoreRestarts(): void {
    this.stopping = true;
    this.stopped.abort();
  }

  /** SIGTERM (it drains), SIGKILL after `graceMs`; nothing is restarted from here on. */
  async stop(graceMs: number): Promise<void> {
    this.noMoreRestarts();
    await this.run.stop(graceMs);
  }

  /** Synchronous last resort (the launcher's `exit`). */
  kill(): void {
    this.noMoreRestarts();
    this.run.kill();
  }
}
