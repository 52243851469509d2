/** What every `bench/*.bench.ts` exports, and helpers they share. */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus, setPriority, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Benchmark {
  /** Stable id: the BENCHMARKS.md section markers use it. */
  id: string;
  title: string;
  /** Runs the benchmark and returns the section body (markdown). */
  run(): Promise<string>;
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}, first touch of a 4 KiB page ${pageFaultMicros().toFixed(1)} µs`;
}

/**
 * What touching fresh memory costs here (µs per 4 KiB page): a large unzeroed allocation is mapped but not yet
 * backed, so writing one byte per page takes one minor fault each. About 0.1–0.5 µs on bare metal or a hardware-
 * virtualised VM; far more under shadow paging, where every service that allocates and frees large buffers pays it.
 */
export function pageFaultMicros(): number {
  const pages = 8192;
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const buffer = Buffer.allocUnsafeSlow(pages * 4096);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < buffer.length; i += 4096) buffer[i] = 1;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1000 / pages);
  }
  return best;
}

/** The repository root: benchmark processes run from it. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A /proc `stat` line: the command name, and the fields after it (state first: proc(5)'s 3rd field is index 0). */
function procStat(path: string): { comm: string; fields: string[] } {
  const text = readFileSync(path, "utf8");
  const close = text.lastIndexOf(")"); // the name itself may hold ") "
  return { comm: text.slice(text.indexOf("(") + 1, close), fields: text.slice(close + 2).split(" ") };
}

const cpuSecondsIn = (fields: string[]) => (Number(fields[11]) + Number(fields[12])) / 100;

/** CPU seconds (user + system) a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  return cpuSecondsIn(procStat(`/proc/${pid}/stat`).fields);
}

/** A process's or thread's current figures, from its /proc `stat` line; undefined once it has ended. */
function statOf(path: string): { comm: string; fields: string[] } | undefined {
  try {
    return procStat(path);
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds used so far by the machine's processes, summed per group: `groupOf` names a process's group from its
 * pid and command name (undefined: not counted); `threadsOf` splits one process by its threads instead (a thread's
 * tid, command name and nice value → a group).
 */
export function cpuSecondsByGroup(
  groupOf: (pid: number, comm: string) => string | undefined,
  threadsOf?: { pid: number; groupOf: (tid: number, comm: string, nice: number) => string },
): Map<string, number> {
  const totals = new Map<string, number>();
  const add = (group: string, seconds: number) => totals.set(group, (totals.get(group) ?? 0) + seconds);
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    if (pid === threadsOf?.pid) {
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        const stat = statOf(`/proc/${pid}/task/${task}/stat`);
        if (stat) add(threadsOf.groupOf(Number(task), stat.comm, Number(stat.fields[16])), cpuSecondsIn(stat.fields));
      }
      continue;
    }
    const stat = statOf(`/proc/${pid}/stat`);
    const group = stat && groupOf(pid, stat.comm);
    if (group) add(group, cpuSecondsIn(stat.fields));
  }
  return totals;
}

/** Minor page faults a process has taken so far (each a first touch of a page, or a page given back and retaken). */
export function minorFaultsOf(pid: number): number {
  return Number(procStat(`/proc/${pid}/stat`).fields[7]);
}

/** CPU seconds the whole machine has been busy (every core, every process: user, nice, system, irq, softirq). */
export function machineBusySeconds(): number {
  const [user, nice, system, , , irq, softirq] = readFileSync("/proc/stat", "utf8")
    .split("\n")[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user! + nice! + system! + irq! + softirq!) / 100;
}

/** Resolves once `url` answers 2xx (a service's /readyz). */
export async function waitReady(url: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends SIGTERM and resolves when the process has exited. */
export async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/**
 * BENCH_PRIORITY=-10 (root): every process and thread of a benchmark (servers, workers, load generators, this
 * process) runs at that priority, so unrelated work on a shared machine does not take the cores in the middle of a
 * measurement. Every process of a benchmark gets the same priority, so its ratios stay fair; PostgreSQL, Redis and
 * RabbitMQ keep theirs. Each section reports it when used.
 */
export const benchPriority: number | undefined =
  process.env.BENCH_PRIORITY === undefined ? undefined : Number(process.env.BENCH_PRIORITY);

/** "BENCH_PRIORITY=-10 " when set, for the command line a section prints. */
export const priorityPrefix = benchPriority === undefined ? "" : `BENCH_PRIORITY=${benchPriority} `;

/** The clause a section's setup sentence ends with when BENCH_PRIORITY is set ("" otherwise). */
export const priorityNote =
  benchPriority === undefined
    ? ""
    : `; every process and thread of the benchmark at priority ${benchPriority}, other work on the machine kept running`;

/**
 * Gives every thread of this process the benchmark priority (Linux's nice value is per thread). Called first in a
 * benchmark: the threads and processes it starts afterwards inherit it. Absolute, so never applied twice.
 */
export function prioritise(): void {
  if (benchPriority === undefined) return;
  try {
    for (const tid of readdirSync("/proc/self/task")) setPriority(Number(tid), benchPriority);
  } catch (err) {
    throw new Error(`BENCH_PRIORITY=${benchPriority} could not be applied (needs root for < 0): ${String(err)}`);
  }
}

/** The value of a sample in a Prometheus text exposition (`name{labels} value`, the first one); NaN when absent. */
export function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * An idle Node process watching its own event loop while (a) runs: the delay the machine alone causes (scheduling on
 * shared cores), beside the measured process's. Resolves with its max and p99 (ms) when stopped.
 */
export function idleControl(): { stop: () => Promise<{ max: number; p99: number }> } {
  const script = `const h = require("node:perf_hooks").monitorEventLoopDelay({ resolution: 1 }); h.enable();
    process.stdin.on("data", () => {}); process.stdin.on("end", () => { h.disable();
    process.stdout.write(JSON.stringify({ max: h.max / 1e6, p99: h.percentile(99) / 1e6 })); process.exit(0); });`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        child.once("exit", () => {
          try {
            resolve(JSON.parse(out) as { max: number; p99: number });
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        child.stdin.end();
      }),
  };
}
