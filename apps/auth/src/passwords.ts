/**
 * Password hashing: argon2id at (at least) OWASP parameters, m = 19456 KiB, t = 2, p = 1.
 * @node-rs/argon2 runs each hash on a libuv worker thread, so the event loop keeps serving; a semaphore bounds
 * how many run at once (memory is m per hash, and a core is left to the event loop).
 */
import { availableParallelism } from "node:os";
import { type Algorithm, hash, verify } from "@node-rs/argon2";

/** `Algorithm.Argon2id` (a const enum, not importable under verbatimModuleSyntax). */
const ARGON2ID = 2 as Algorithm;

class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export interface PasswordHasherOptions {
  memoryKiB: number;
  timeCost: number;
  concurrency?: number;
}

export class PasswordHasher {
  private readonly gate: Semaphore;
  private readonly params;
  /** A hash of a random password: verified against when the account does not exist, so timing tells nothing. */
  private dummy: Promise<string>;

  constructor(opts: PasswordHasherOptions) {
    this.params = { algorithm: ARGON2ID, memoryCost: opts.memoryKiB, timeCost: opts.timeCost, parallelism: 1 };
    this.gate = new Semaphore(opts.concurrency ?? Math.max(1, availableParallelism() - 1));
    this.dummy = this.hash(crypto.randomUUID());
  }

  hash(password: string): Promise<string> {
    return this.gate.run(() => hash(password, this.params));
  }

  /** Constant-work check: with no stored hash, a dummy hash is verified and false returned. */
  async verify(stored: string | undefined, password: string): Promise<boolean> {
    const target = stored ?? (await this.dummy);
    const ok = await this.gate.run(() => verify(target, password).catch(() => false));
    return stored !== undefined && ok;
  }
}
