/** What every `bench/*.bench.ts` exports, and helpers they share. */
import { cpus, totalmem } from "node:os";

export interface Benchmark {
  /** Stable id: the BENCHMARKS.md section markers use it. */
  id: string;
  title: string;
  /** Runs the benchmark and returns the section body (markdown). */
  run(): Promise<string>;
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}
