/**
 * Dynamic batching: items wait until `maxBatch` are ready or the oldest has waited `maxWaitMs`, and a batch is only
 * formed when a runner is free — so under load batches fill up while the threads are busy, and when idle a lone
 * image waits at most `maxWaitMs`.
 */
export interface BatcherOptions<T, R> {
  maxBatch: number;
  maxWaitMs: number;
  /** How many batches could start now (idle inference threads). */
  capacity: () => number;
  /** Runs one batch; resolves with one result per item, in order. */
  run: (items: T[]) => Promise<R[]>;
}

interface Waiting<T, R> {
  item: T;
  since: number;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class Batcher<T, R> {
  readonly #opts: BatcherOptions<T, R>;
  readonly #waiting: Waiting<T, R>[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: BatcherOptions<T, R>) {
    if (opts.maxBatch < 1) throw new RangeError("maxBatch must be at least 1");
    this.#opts = opts;
  }

  /** Items waiting for a batch. */
  get pending(): number {
    return this.#waiting.length;
  }

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, since: performance.now(), resolve, reject });
      this.pump();
    });
  }

  /** Starts every batch that is due and can run; call it when a runner frees up. */
  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const { maxBatch, maxWaitMs } = this.#opts;
    while (this.#waiting.length > 0 && this.#opts.capacity() > 0) {
      const due = this.#waiting.length >= maxBatch || performance.now() - this.#waiting[0]!.since >= maxWaitMs;
      if (!due) break;
      this.#start(this.#waiting.splice(0, maxBatch));
    }
    if (this.#waiting.length > 0 && this.#waiting.length < maxBatch) {
      const wait = this.#waiting[0]!.since + maxWaitMs - performance.now();
      // a partial batch already due waits for a runner, and the runner's onIdle pumps: a timer would poll every 1 ms
      if (wait > 0) this.#timer = setTimeout(() => this.pump(), Math.ceil(wait));
    }
  }

  #start(batch: Waiting<T, R>[]): void {
    let running: Promise<R[]>;
    try {
      running = this.#opts.run(batch.map((w) => w.item));
    } catch (err) {
      running = Promise.reject(err);
    }
    running.then(
      (results) => {
        if (results.length !== batch.length) {
          const err = new Error(`batch returned ${results.length} results for ${batch.length} items`);
          for (const w of batch) w.reject(err);
        } else batch.forEach((w, i) => w.resolve(results[i]!));
      },
      (err: unknown) => {
        for (const w of batch) w.reject(err);
      },
    );
  }

  /** Rejects every waiting item (shutdown) and stops the timer. */
  clear(reason: Error): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiting.splice(0)) w.reject(reason);
  }
}
