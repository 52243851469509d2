// Runs argon2id on a dedicated worker thread at a low scheduling priority (Linux: nice applies per thread), so
// the event loop's thread always wins the CPU over a hash in progress. Plain JS: loadable without a TS loader.
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { hashSync, verifySync } from "@node-rs/argon2";

try {
  // /proc/thread-self -> "<pid>/task/<tid>": this thread's id
  const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
  setPriority(tid, workerData?.nice ?? 19);
} catch {
  // not Linux, or not permitted: run at normal priority
}

parentPort?.on("message", (msg) => {
  try {
    const result = msg.op === "hash" ? hashSync(msg.password, msg.params) : verifySync(msg.hash, msg.password);
    parentPort?.postMessage({ result });
  } catch (err) {
    parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
});
