/**
 * A fixed set of inference threads, one ONNX session each for the process's life. `run` hands a batch to an idle
 * thread (its pixels copied into shared buffers) and resolves with its detections; batches wait in order when every
 * thread is busy. A thread that dies fails its batch with `InferenceThreadError` and is replaced, so one crash costs
 * one batch.
 *
 * A thread is never terminated while its session runs: onnxruntime-node aborts the whole process (`terminate called
 * after throwing an instance of 'Napi::Error'`) when a run completes into a thread that is gone. `close` waits for
 * the running batches, then ends the threads, which are idle by then.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { jitteredDelay } from "@ndt/kit";
import type { FromThread, SessionThreadOptions, ToThread } from "./protocol.js";
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
}

export type ThreadEvent =
  | { type: "exited"; code: number; duringBatch: boolean }
  /** Starting the replacement failed; the pool tries again after `retryInMs`. */
  | { type: "replace-failed"; error: string; attempt: number; retryInMs: number }
  | { type: "replaced"; attempts: number };

/** Backoff between attempts to start a replacement thread: full jitter, 1 s doubling up to 60 s. */
const REPLACE_BASE_MS = 1_000;
const REPLACE_CAP_MS = 60_000;

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
  busy: Pending | undefined;
  /** The shared buffers holding the running batch's pixels, back to the pool when it answers. */
  lent: SharedArrayBuffer[];
}

interface Ready {
  names: string[];
  imgsz: [number, number];
  provider: string;
  providerFailures: { provider: string; error: string }[];
}

/** Starts a thread on `url`; from source (a `.ts` entry) tsx's loader is registered in the thread first. */
function spawn(url: URL, workerData: SessionThreadOptions): Worker {
  if (!url.pathname.endsWith(".ts")) return new Worker(url, { workerData });
  const tsx = pathToFileURL(
    createRequire(import.meta.url)
      .resolve("tsx/esm/api")
      .replace(/\.cjs$/, ".mjs"),
  ).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
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
    const workers = started.map((s) => (s as PromiseFulfilledResult<{ worker: Worker; ready: Ready }>).value);
    const pool = new InferencePool(opts, workers[0]!.ready);
    for (const { worker } of workers) pool.#attach(worker);
    return pool;
  }

  static #boot(opts: InferencePoolOptions): Promise<{ worker: Worker; ready: Ready }> {
    const { threads: _threads, workerUrl, onThreadEvent: _onThreadEvent, ...threadOptions } = opts;
    const worker = spawn(workerUrl, threadOptions);
    return new Promise((resolve, reject) => {
      const onExit = (code: number) =>
        reject(new InferenceThreadError(`inference thread exited (${code}) while loading`));
      const onError = (err: Error) => reject(err);
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", (message: FromThread) => {
        // the error listener stays: until #attach adds its own, an unheard 'error' would crash the process
        worker.off("exit", onExit);
        if (message.type === "ready") resolve({ worker, ready: message });
        else {
          void worker.terminate();
          reject(new Error(message.type === "load-failed" ? message.message : `unexpected ${message.type}`));
        }
      });
    });
  }

  #attach(worker: Worker): void {
    const slot: Slot = { worker, busy: undefined, lent: [] };
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
        async ({ worker }) => {
          if (this.#closed) return void (await worker.terminate());
          this.#attach(worker);
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
   * threads end (see the header for why not sooner).
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pending of this.#waiting.splice(0)) pending.reject(new InferenceThreadError("inference pool closed"));
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    await Promise.all(this.#slots.map((s) => s.busy?.settled));
    // a replacement still loading its model is ended once loaded (terminating a session mid-load is not safe either)
    await Promise.all([...this.#replacing]);
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
