/**
 * Password hashing: argon2id at (at least) OWASP parameters, m = 19456 KiB, t = 2, p = 1.
 *
 * Off the event loop: hashes run on dedicated worker threads (`argon2-worker.mjs`) that lower their own
 * scheduling priority, so on a busy machine the event loop's thread is scheduled first and keeps its delay low
 * while logins run. `concurrency` workers at most (memory is m per hash; a core is left to the event loop).
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { Algorithm } from "@node-rs/argon2";

/** `Algorithm.Argon2id` (a const enum, not importable under verbatimModuleSyntax). */
const ARGON2ID = 2 as Algorithm;

export interface PasswordHasherOptions {
  memoryKiB: number;
  timeCost: number;
  concurrency?: number;
  /** Niceness of the hashing threads (0 = normal, 19 = lowest). @default 19 */
  nice?: number;
}

type Job = { op: "hash"; password: string; params: object } | { op: "verify"; hash: string; password: string };
type Pending = { resolve: (v: string | boolean) => void; reject: (e: Error) => void };

class Argon2Pool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: { job: Job; pending: Pending }[] = [];
  /** The call each busy thread runs (one at a time), so a thread's death fails it instead of leaving it pending. */
  private readonly running = new Map<Worker, Pending>();
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly nice: number,
  ) {}

  private spawn(): Worker {
    const worker = new Worker(new URL("./argon2-worker.mjs", import.meta.url), { workerData: { nice: this.nice } });
    worker.unref();
    worker.on("message", (msg: { result?: string | boolean; error?: string }) => {
      const pending = this.running.get(worker);
      this.running.delete(worker);
      if (msg.error !== undefined) pending?.reject(new Error(msg.error));
      else pending?.resolve(msg.result!);
      this.release(worker);
    });
    // an uncaught error ends the thread: the exit below settles its job (an unheard 'error' would crash the process)
    worker.on("error", () => undefined);
    worker.once("exit", (code) => {
      this.running.get(worker)?.reject(new Error(`password hashing thread exited (${code})`));
      this.running.delete(worker);
      for (const list of [this.all, this.idle]) {
        const at = list.indexOf(worker);
        if (at >= 0) list.splice(at, 1);
      }
      // a job waiting for a thread gets a new one
      const next = this.closed ? undefined : this.queue.shift();
      if (next) this.dispatch(this.spawn(), next.job, next.pending);
    });
    this.all.push(worker);
    return worker;
  }

  private release(worker: Worker) {
    const next = this.queue.shift();
    if (next) this.dispatch(worker, next.job, next.pending);
    else this.idle.push(worker);
  }

  private dispatch(worker: Worker, job: Job, pending: Pending) {
    this.running.set(worker, pending);
    worker.postMessage(job);
  }

  run(job: Job): Promise<string | boolean> {
    if (this.closed) return Promise.reject(new Error("the password hasher is closed"));
    return new Promise((resolve, reject) => {
      const worker = this.idle.pop() ?? (this.all.length < this.size ? this.spawn() : undefined);
      if (worker) this.dispatch(worker, job, { resolve, reject });
      else this.queue.push({ job, pending: { resolve, reject } });
    });
  }

  /** Ends the threads; calls still waiting or running fail (none are left hanging). */
  async close() {
    this.closed = true;
    const gone = new Error("the password hasher is closed");
    for (const { pending } of this.queue.splice(0)) pending.reject(gone);
    for (const pending of this.running.values()) pending.reject(gone);
    this.running.clear();
    await Promise.all([...this.all].map((w) => w.terminate()));
  }
}

export class PasswordHasher {
  private readonly pool: Argon2Pool;
  private readonly params;
  /** A hash of a random password: verified against when the account does not exist, so timing tells nothing. */
  private readonly dummy: Promise<string>;

  constructor(opts: PasswordHasherOptions) {
    this.params = { algorithm: ARGON2ID, memoryCost: opts.memoryKiB, timeCost: opts.timeCost, parallelism: 1 };
    this.pool = new Argon2Pool(opts.concurrency ?? Math.max(1, availableParallelism() - 1), opts.nice ?? 19);
    this.dummy = this.hash(crypto.randomUUID());
    // awaited by the first verify of an unknown account; a failure must not be an unhandled rejection meanwhile
    this.dummy.catch(() => undefined);
  }

  async hash(password: string): Promise<string> {
    return (await this.pool.run({ op: "hash", password, params: this.params })) as string;
  }

  /** Constant-work check: with no stored hash, a dummy hash is verified and false returned. */
  async verify(stored: string | undefined, password: string): Promise<boolean> {
    const target = stored ?? (await this.dummy);
    const ok = await this.pool.run({ op: "verify", hash: target, password }).catch(() => false);
    return stored !== undefined && ok === true;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
