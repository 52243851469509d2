/**
 * The ports of the local stack's services and of its embedded PostgreSQL. Each is chosen here and bound later by a
 * child process (a service binds its port ~10 s after launch, once its TypeScript has loaded), so a port that is
 * merely free when chosen could be taken in between. Two things keep it from being taken:
 *
 * - Ports are drawn from below the kernel's ephemeral range (Linux: ip_local_port_range, 32768–60999 by default;
 *   elsewhere 49152–65535), from 10000 up. The kernel hands out ephemeral ports by itself — to every `listen(0)` and
 *   to the local end of every outgoing connection — so a port picked with `listen(0)` and released could be taken
 *   by any process that connects anywhere; one below that range is taken only by a process that names it.
 * - Each port is claimed for this `npm start` in a directory shared by the user's stacks (a file per port holding the
 *   launcher's pid, created exclusively): two stacks started at once never choose the same one. Were they to, one
 *   stack's readiness probe would be answered by the other's service. A claim whose launcher is gone is void, and
 *   swept away at the next stack's first claim.
 */
import { randomInt } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { processRuns } from "./launcher-lock.js";
import { freePort, portIsFree } from "./processes.js";

/** The lowest port drawn: above the usual fixed ports of development servers and databases. */
const LOWEST = 10_000;

/** Where the claims live: per user, so that no user's stale file blocks another's. */
export function defaultClaimsDir(): string {
  return join(tmpdir(), `ndt-local-ports-${userInfo().uid}`);
}

/** The ports drawn from, `[low, high)`: from 10000 to the start of the kernel's ephemeral range. */
export function drawRange(rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"): [number, number] {
  let ephemeralLow = 49_152; // IANA's dynamic ports: macOS's and Windows' ephemeral range
  try {
    const low = Number.parseInt(readFileSync(rangeFile, "utf8").trim().split(/\s+/)[0] ?? "", 10);
    if (low > 0) ephemeralLow = low;
  } catch {
    // not Linux: the IANA default
  }
  return [LOWEST, ephemeralLow];
}

export class PortClaims {
  private readonly held = new Set<number>();
  private swept = false;

  constructor(
    private readonly dir = defaultClaimsDir(),
    private readonly range = drawRange(),
  ) {}

  /**
   * `preferred` when it is free and no other stack claims it; otherwise a free, unclaimed port of the draw range.
   * The port stays claimed until `release()`.
   */
  async take(preferred?: number): Promise<number> {
    if (!this.swept) this.sweep();
    if (preferred !== undefined && (await this.claimIfFree(preferred))) return preferred;
    const [low, high] = this.range;
    if (high > low) {
      for (let attempt = 0; attempt < 200; attempt++) {
        const port = randomInt(low, high);
        if (await this.claimIfFree(port)) return port;
      }
    }
    // no room below the ephemeral range (a machine configured so), or all tried were busy: the kernel's choice,
    // still claimed against the other stacks
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = await freePort();
      if (this.claim(port)) return port;
    }
    throw new Error(`no free port to claim in ${this.dir}`);
  }

  /** Gives up every claim of this instance (synchronous: it also runs on `exit`). */
  release(): void {
    for (const port of this.held) {
      const file = join(this.dir, String(port));
      if (holderOf(file) === process.pid) rmSync(file, { force: true });
    }
    this.held.clear();
  }

  /** Removes the claims of launchers that are gone (killed outright), so that they do not pile up. */
  private sweep(): void {
    this.swept = true;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      const file = join(this.dir, name);
      const holder = holderOf(file);
      if (holder !== undefined && !processRuns(holder)) rmSync(file, { force: true });
    }
  }

  private async claimIfFree(port: number): Promise<boolean> {
    if (!this.claim(port)) return false;
    if (await portIsFree(port)) return true;
    this.releaseOne(port);
    return false;
  }

  /** Claims `port` unless a running launcher (this one included, through another instance) holds it. */
  private claim(port: number): boolean {
    if (this.held.has(port)) return false;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = join(this.dir, String(port));
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
        this.held.add(port);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const holder = holderOf(file);
        // a claim being written (empty for an instant) or held by a live launcher
        if (holder === undefined || processRuns(holder)) return false;
        // left by a launcher killed outright: void
        rmSync(file, { force: true });
      }
    }
    return false;
  }

  private releaseOne(port: number): void {
    rmSync(join(this.dir, String(port)), { force: true });
    this.held.delete(port);
  }
}

function holderOf(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8"), 10);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
