/**
 * A fixed set of inference threads, one ONNX session each for the process's life. `run` hands a batch to an idle
 * thread (its pixels copied into shared buffers) and resolves with its detections; batches wait in order when every
 * thread is busy. A thread that dies fails its batch with `InferenceThreadError` and is replaced, so one crash costs
 * one batch.
 *
 * A thread is never terminated while its session runs: onnxruntime-node aborts the whole process (`terminate called
 * after throwing an instance of 'Napi::Error'`, exit 134) when a run completes into a thread that is gone. `close`
 * waits for the running batches, then ends the threads, which are idle by then; a thread that has not answered within
 * `stopTimeoutMs` is ended anyway. A process exit (`process.exit`, an uncaught exception) ends every thread too, so
 * the pool holds it, in its 'exit' listener, until no thread is inside onnxruntime (bounded by `stopTimeoutMs`).
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { jitteredDelay } from "@ndt/kit";
import type { FromThread, SessionThreadData, SessionThreadOptions, ToThread } from "./protocol.js";
import type { LetterboxedImage } from "./geometry.js";
import type { BatchResult } from "./runner.js";

/** The thread's batch failed or the thread died: transient, the job may be retried. */
export class InferenceThreadError extends Error {
  override name = "InferenceThreadError";
}

export interface InferencePoolOptions extends SessionThreadOptions {
  /** Session threads. */
  threads: number;
  /** The session thread's entry: `session.worker.js` in the build, `.ts` when running from source. */
  workerUrl: URL;
  /** Told when a thread ends unasked and how its replacement goes (for the log). */
  onThreadEvent?: (event: ThreadEvent) => void;
  /**
   * How long `close`, and a process exit, wait for running batches (and model loads) before ending the threads
   * anyway. Ending a thread inside onnxruntime aborts the process when its run returns, so this is for a thread that
   * no longer answers: keep it well above a batch's time.
   * @default 10_000
   */
  stopTimeoutMs?: number;
}

export type ThreadEvent =
  | { type: "exited"; code: number; duringBatch: boolean }
  /** Starting the replacement failed; the pool tries again after `retryInMs`. */
  | { type: "replace-failed"; error: string; attempt: number; retryInMs: number }
  | { type: "replaced"; attempts: number };

/** Backoff between attempts to start a replacement thread: full jitter, 1 s doubling up to 60 s. */
const REPLACE_BASE_MS = 1_000;
const REPLACE_CAP_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

/** Every session thread alive in this process: its `inOrt` flag, and how long a process exit may wait on it. */
const liveThreads = new Map<Int32Array, number>();
let exitHookInstalled = false;

/**
 * The process's 'exit' listener. Node ends the worker threads after the 'exit' listeners return, and no batch can be
 * handed out while this one blocks, so once every flag reads 0 no run is in flight and the exit keeps its code.
 */
function awaitThreadsOutOfOrt(): void {
  const started = Date.now();
  for (const [inOrt, waitMs] of liveThreads) {
    const left = started + waitMs - Date.now();
    if (left > 0) Atomics.wait(inOrt, 0, 1, left);
  }
}

interface Pending {
  id: number;
  images: LetterboxedImage[];
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
  /** Resolves once the batch has an answer, whichever it is. */
  settled: Promise<void>;
}

interface Slot {
  worker: Worker;
  /** The thread's `inOrt` flag (protocol.ts). */
  inOrt: Int32Array;
  busy: Pending | undefined;
  /** The shared buffers holding the running batch's pixels, back to the pool when it answers. */
  lent: SharedArrayBuffer[];
}

/** A thread that has loaded its model. */
interface Booted {
  worker: Worker;
  inOrt: Int32Array;
  ready: Ready;
}

interface Ready {
  names: string[];
  imgsz: [number, number];
  provider: string;
  providerFailures: { provider: string; error: string }[];
}

/**
 * Starts a thread on `url`, inside onnxruntime (loading) from the start, and known to the process's exit listener
 * until it ends. From source (a `.ts` entry) tsx's loader is registered in the thread first.
 */
function spawn(url: URL, options: SessionThreadOptions, stopTimeoutMs: number): { worker: Worker; inOrt: Int32Array } {
  const inOrt = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  inOrt[0] = 1;
  const workerData: SessionThreadData = { ...options, inOrt };
  let worker: Worker;
  if (!url.pathname.endsWith(".ts")) worker = new Worker(url, { workerData });
  else {
    const tsx = pathToFileURL(
      createRequire(import.meta.url)
        .resolve("tsx/esm/api")
        .replace(/\.cjs$/, ".mjs"),
    ).href;
    const entry = JSON.stringify(url.href);
    const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${entry}); })`;
    worker = new Worker(boot, { eval: true, workerData });
  }
  liveThreads.set(inOrt, stopTimeoutMs);
  worker.once("exit", () => liveThreads.delete(inOrt));
  if (!exitHookInstalled) {
    process.on("exit", awaitThreadsOutOfOrt);
    exitHookInstalled = true;
  }
  return { worker, inOrt };
}

/** Whether `work` settled before `deadline` (epoch ms); it goes on either way. */
async function settledBy(work: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([work.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

export class InferencePool {
  readonly names: readonly string[];
  /** [height, width] */
  readonly imgsz: readonly [number, number];
  readonly provider: string;
  readonly providerFailures: readonly { provider: string; error: string }[];
  readonly #opts: InferencePoolOptions;
  readonly #slots: Slot[] = [];
  readonly #waiting: Pending[] = [];
  /**
   * Pixel buffers free for the next batch, each big enough for one RGB image at the model's size; as many exist as
   * images ever ran at once. Why shared memory: sharp's output lives in native memory, which postMessage cannot
   * transfer (it structured-clones it: ~35 ms on the event loop for a batch of 8 RGB images at 640², as much again on
   * the thread). A transferred copy avoids that, but every buffer coming back is a new ArrayBuffer in this isolate,
   * and V8 counts those bytes as external memory towards its next full GC: with them, the event loop's isolate ran a
   * mark-compact every ~0.4 s under load. A shared buffer is posted without copy or transfer and is never new here.
   */
  readonly #freeBuffers: SharedArrayBuffer[] = [];
  #nextId = 1;
  #closed = false;
  /** Replacement threads starting, and timers before the next attempt: close() waits for or cancels them. */
  readonly #replacing = new Set<Promise<void>>();
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  /** Called whenever a thread becomes free (the batcher dispatches then). */
  onIdle: (() => void) | undefined;

  private constructor(opts: InferencePoolOptions, ready: Ready) {
    this.#opts = opts;
    this.names = ready.names;
    this.imgsz = ready.imgsz;
    this.provider = ready.provider;
    this.providerFailures = ready.providerFailures;
  }

  /** Starts every thread and waits until each has loaded the model (a load failure rejects). */
  static async start(opts: InferencePoolOptions): Promise<InferencePool> {
    if (opts.threads < 1) throw new RangeError("threads must be at least 1");
    const started = await Promise.allSettled(Array.from({ length: opts.threads }, () => InferencePool.#boot(opts)));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) {
      await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.worker.terminate() : undefined)));
      throw (failed as PromiseRejectedResult).reason;
    }
    const workers = started.map((s) => (s as PromiseFulfilledResult<Booted>).value);
    const pool = new InferencePool(opts, workers[0]!.ready);
    for (const booted of workers) pool.#attach(booted);
    return pool;
  }

  static #boot(opts: InferencePoolOptions): Promise<Booted> {
    const { threads: _threads, workerUrl, onThreadEvent: _onThreadEvent, stopTimeoutMs, ...threadOptions } = opts;
    const { worker, inOrt } = spawn(workerUrl, threadOptions, stopTimeoutMs ?? STOP_TIMEOUT_MS);
    return new Promise((resolve, reject) => {
      const onExit = (code: number) =>
        reject(new InferenceThreadError(`inference thread exited (${code}) while loading`));
      const onError = (err: Error) => reject(err);
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", (message: FromThread) => {
        // the error listener stays: until #attach adds its own, an unheard 'error' would crash the process
        worker.off("exit", onExit);
        if (message.type === "ready") resolve({ worker, inOrt, ready: message });
        else {
          void worker.terminate();
          reject(new Error(message.type === "load-failed" ? message.message : `unexpected ${message.type}`));
        }
      });
    });
  }

  #attach({ worker, inOrt }: Booted): void {
    const slot: Slot = { worker, inOrt, busy: undefined, lent: [] };
    this.#slots.push(slot);
    worker.on("message", (message: FromThread) => {
      const pending = slot.busy;
      if (!pending || !("id" in message) || message.id !== pending.id) return;
      slot.busy = undefined;
      this.#freeBuffers.push(...slot.lent.splice(0));
      if (message.type === "result") pending.resolve({ detections: message.detections, timings: message.timings });
      else pending.reject(new InferenceThreadError(`inference failed: ${message.message}`));
      this.#dispatch();
    });
    worker.on("error", () => undefined); // the exit below settles the batch
    worker.once("exit", (code) => {
      this.#slots.splice(this.#slots.indexOf(slot), 1);
      const duringBatch = slot.busy !== undefined;
      slot.busy?.reject(new InferenceThreadError(`inference thread exited (${code}) during a batch`));
      slot.busy = undefined;
      this.#freeBuffers.push(...slot.lent.splice(0));
      if (this.#closed) return;
      this.#tell({ type: "exited", code, duringBatch });
      // until the new session is up, the other threads (or the queue) carry the work
      this.#replace(0);
    });
  }

  /** The owner's callback, which must not break the pool if it throws. */
  #tell(event: ThreadEvent): void {
    try {
      this.#opts.onThreadEvent?.(event);
    } catch {
      // a logging failure is no reason to stop replacing threads
    }
  }

  #replace(attempt: number): void {
    const replacing: Promise<void> = InferencePool.#boot(this.#opts)
      .then(
        async (booted) => {
          if (this.#closed) return void (await booted.worker.terminate());
          this.#attach(booted);
          this.#tell({ type: "replaced", attempts: attempt + 1 });
          this.#dispatch();
        },
        (err: unknown) => {
          if (this.#closed) return;
          // it loaded before, so this is the machine (memory, driver, a volume): try again, backing off
          const retryInMs = jitteredDelay(attempt, REPLACE_BASE_MS, REPLACE_CAP_MS);
          this.#tell({
            type: "replace-failed",
            error: err instanceof Error ? err.message : String(err),
            attempt: attempt + 1,
            retryInMs,
          });
          const timer = setTimeout(() => {
            this.#retryTimers.delete(timer);
            this.#replace(attempt + 1);
          }, retryInMs);
          this.#retryTimers.add(timer);
        },
      )
      .finally(() => this.#replacing.delete(replacing));
    this.#replacing.add(replacing);
  }

  /** Threads not running a batch. */
  get idle(): number {
    return this.#slots.filter((s) => !s.busy).length - this.#waiting.length;
  }

  get threads(): number {
    return this.#slots.length;
  }

  /** Runs one batch on the next free thread. */
  run(images: readonly LetterboxedImage[]): Promise<BatchResult> {
    if (this.#closed) return Promise.reject(new InferenceThreadError("inference pool is closed"));
    let pending: Omit<Pending, "settled"> | undefined;
    const result = new Promise<BatchResult>((resolve, reject) => {
      pending = { id: this.#nextId++, images: images.slice(), resolve, reject };
    });
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.#waiting.push({ ...pending!, settled });
    this.#dispatch();
    return result;
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (slot.busy) continue;
      const next = this.#waiting.shift();
      if (!next) break;
      slot.busy = next;
      const images = next.images.map((img) => ({ ...img, pixels: this.#shared(img.pixels, slot) }));
      const message: ToThread = { type: "run", id: next.id, images };
      // set here, not by the thread: a batch posted but not yet started must hold a process exit too
      Atomics.store(slot.inOrt, 0, 1);
      slot.worker.postMessage(message);
    }
    if (this.idle > 0) this.onIdle?.();
  }

  /**
   * `pixels` copied into a free shared buffer (or a new one), lent to `slot` until its batch answers. Every buffer
   * holds one RGB image at the model's size, the most a letterboxed image can be (a larger one is a RangeError here).
   */
  #shared(pixels: Uint8Array, slot: Slot): Uint8Array {
    const [h, w] = this.imgsz;
    const buffer = this.#freeBuffers.pop() ?? new SharedArrayBuffer(3 * w * h);
    slot.lent.push(buffer);
    const view = new Uint8Array(buffer, 0, pixels.length);
    view.set(pixels);
    return view;
  }

  /**
   * Batches waiting for a thread fail with InferenceThreadError; batches running finish and answer as usual. Then the
   * threads end (see the header for why not sooner). Resolves within `stopTimeoutMs` whatever the threads do: a thread
   * still silent then is ended anyway, and its batch fails with InferenceThreadError.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const deadline = Date.now() + (this.#opts.stopTimeoutMs ?? STOP_TIMEOUT_MS);
    for (const pending of this.#waiting.splice(0)) pending.reject(new InferenceThreadError("inference pool closed"));
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    // a replacement still loading its model is ended once loaded (terminating a session mid-load is not safe either)
    await settledBy(Promise.all([...this.#slots.map((s) => s.busy?.settled), ...this.#replacing]), deadline);
    // past the deadline the ends are asked for, not awaited: a thread blocked in native code ends only when it returns
    await settledBy(Promise.all(this.#slots.map((s) => s.worker.terminate())), deadline);
  }
}
