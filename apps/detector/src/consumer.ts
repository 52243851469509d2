/**
 * The detection worker's pipeline, written against kit's ports (JobQueue, ObjectStore, SqlDatabase) so it runs the
 * same on RabbitMQ/S3 and on the local stack's embedded adapters.
 *
 * Per delivery: validate the body → mark the image `processing` → fetch the object → decode + letterbox (sharp, on
 * libuv's pool) → dynamic batch → inference thread (CHW, session.run, NMS, boxes back) → the batch's detections and
 * `done` committed in one statement → ack. At most `prefetch` deliveries are held, which bounds memory and queue lag.
 *
 * Outcomes:
 * - invalid body: dead-lettered with the reason (there is no image to mark);
 * - permanent failure (object gone, not a PNG/JPEG, corrupt, too large): image `failed` with the reason, then ack —
 *   a poison image is never redelivered;
 * - transient failure (database, object store, inference thread): retried after a jittered pause; on the delivery
 *   limit's last attempt the image is marked `failed` and the message dead-lettered;
 * - already finished (a redelivery after a lost ack): ack, nothing written twice;
 * - shutdown: the subscription pauses; jobs not yet at inference are released (back to the queue without spending
 *   an attempt; image back to `queued`, unless another delivery of it began meanwhile: results.ts `requeue`); batches
 *   already running finish, commit and ack.
 */
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import {
  jitteredDelay,
  type Delivery,
  type JobQueue,
  type Logger,
  type ObjectStore,
  type Subscription,
} from "@ndt/kit";
import { Batcher } from "./batcher.js";
import { ImageDecodeError, type LetterboxedImage, letterboxImage } from "./inference/letterbox.js";
import type { BatchResult } from "./inference/runner.js";
import { InvalidJobError, parseJob, type DetectionJob } from "./job.js";
import type { DetectorMetrics, FailureReason } from "./metrics.js";
import type { Claim, Outcome, ResultStore } from "./results.js";

/** What the consumer needs from the inference pool (InferencePool implements it). */
export interface BatchRunner {
  /** [height, width] */
  readonly imgsz: readonly [number, number];
  /** Threads free to start a batch now. */
  readonly idle: number;
  onIdle: (() => void) | undefined;
  run(images: readonly LetterboxedImage[]): Promise<BatchResult>;
}

export interface ConsumerOptions {
  queue: JobQueue;
  queueName: string;
  deliveryLimit: number;
  prefetch: number;
  /** The store of a job's bucket, or undefined when this worker does not read that bucket. */
  objects: (bucket: string) => ObjectStore | undefined;
  results: ResultStore;
  runner: BatchRunner;
  maxBatch: number;
  maxBatchWaitMs: number;
  /** Larger objects fail the job (`too_large`) without being read whole. */
  maxImageBytes: number;
  /**
   * Images fetched and decoded at once; the others wait, unfetched, so neither decoding nor the object store client
   * (its per-request work runs on the event loop) comes in bursts that crowd out inference and stall the loop.
   */
  decodeConcurrency: number;
  metrics: DetectorMetrics;
  log: Logger;
  /** Pause before a transient retry (ms); default: jittered exponential backoff on the delivery count. */
  retryDelay?: (deliveries: number) => number;
}

/** A failure that no retry can fix: the image ends `failed` with this message. */
export class PermanentJobError extends Error {
  override name = "PermanentJobError";
  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }
}

/** The job was abandoned because the worker is stopping: it goes back to the queue. */
class Stopping extends Error {
  override name = "Stopping";
}

interface BatchItem {
  job: DetectionJob;
  image: LetterboxedImage;
}

interface ItemResult {
  /** What writing this image's detections did (the batch is written in one statement). */
  outcome: Outcome;
  /** This image's share of the batch's CHW time, ms. */
  prepareMs: number;
}

async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new PermanentJobError("too_large", `image is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export class DetectionConsumer {
  readonly #o: ConsumerOptions;
  readonly #batcher: Batcher<BatchItem, ItemResult>;
  readonly #inFlight = new Set<Promise<void>>();
  #subscription: Subscription | undefined;
  #stopping = false;
  #wakeRetry = new Set<() => void>();
  #decoding = 0;
  readonly #decodeWaiting: (() => void)[] = [];

  constructor(opts: ConsumerOptions) {
    this.#o = opts;
    this.#batcher = new Batcher<BatchItem, ItemResult>({
      maxBatch: opts.maxBatch,
      maxWaitMs: opts.maxBatchWaitMs,
      capacity: () => opts.runner.idle,
      run: (items) => this.#runBatch(items),
    });
    opts.runner.onIdle = () => this.#batcher.pump();
  }

  /** Deliveries held and not yet settled. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Declares the queue (same arguments as the publisher) and starts consuming. */
  async start(): Promise<void> {
    const { queue, queueName, deliveryLimit, prefetch } = this.#o;
    await queue.declare(queueName, { deliveryLimit });
    this.#subscription = await queue.consume(queueName, { prefetch }, (delivery) => {
      // arrived while stopping (sent before the pause took effect): handed back untouched, the attempt not counted
      const handling = (this.#stopping ? this.#handBack(delivery) : this.#handle(delivery)).catch((err: unknown) =>
        this.#o.log.error({ err, messageId: delivery.id }, "delivery handling failed"),
      );
      this.#inFlight.add(handling);
      this.#o.metrics.inFlight.set(this.#inFlight.size);
      void handling.finally(() => {
        this.#inFlight.delete(handling);
        this.#o.metrics.inFlight.set(this.#inFlight.size);
      });
    });
  }

  /**
   * Stops taking deliveries: jobs not yet at inference are abandoned (back to the queue), running batches finish
   * and are committed and acked, then the subscription ends and the broker re-queues whatever is unsettled. The
   * subscription pauses first, so the acks of the finishing batches bring in no new jobs to hand back.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#batcher.clear(new Stopping("worker stopping"));
    for (const wake of this.#wakeRetry) wake();
    await this.#subscription?.pause();
    await Promise.allSettled([...this.#inFlight]);
    await this.#subscription?.stop();
    this.#subscription = undefined;
  }

  async #handle(d: Delivery): Promise<void> {
    const started = performance.now();
    const { metrics, log } = this.#o;
    if (d.publishedAt > 0) metrics.queueLag.observe(Math.max(0, Date.now() - d.publishedAt) / 1000);
    let job: DetectionJob;
    try {
      job = parseJob(d.body);
    } catch (err) {
      const reason = err instanceof InvalidJobError ? err.message : String(err);
      log.warn({ messageId: d.id, reason }, "invalid detection job: dead-lettered");
      metrics.failed.inc({ reason: "invalid_job" });
      await d.deadLetter(reason);
      return;
    }
    const ctx = { jobId: job.jobId, imageId: job.imageId, deliveries: d.deliveries };
    let claim: Claim | undefined;
    try {
      const begun = await this.#o.results.begin(job);
      if (begun.kind === "missing") {
        // deleted with its inspection (or never ours): nothing to do
        log.warn(ctx, "image not found: job dropped");
        metrics.failed.inc({ reason: "image_missing" });
        await d.ack();
        return;
      }
      if (begun.kind === "finished") {
        log.info({ ...ctx, status: begun.status }, "image already finished: duplicate delivery acked");
        await d.ack();
        return;
      }
      claim = begun.claim;
      this.#checkStopping();
      const { image, decodeMs } = await this.#fetchAndDecode(job);
      this.#checkStopping();
      // inference, then the batch's detections written in one statement: acked only after that commit
      const { outcome, prepareMs } = await this.#batcher.submit({ job, image });
      metrics.preprocess.observe((decodeMs + prepareMs) / 1000);
      await d.ack();
      if (outcome === "written") metrics.processed.inc();
      metrics.jobDuration.observe((performance.now() - started) / 1000);
    } catch (err) {
      if (err instanceof Stopping) {
        await this.#o.results.requeue(job, claim).catch(() => undefined);
        return this.#handBack(d);
      }
      if (err instanceof PermanentJobError) return this.#failPermanently(d, job, err);
      return this.#failTransiently(d, job, err);
    }
  }

  /** Back to the queue without spending an attempt: stopping is not the job's failure. */
  async #handBack(d: Delivery): Promise<void> {
    // if this fails the delivery stays unsettled, and the subscription's stop returns it (counted)
    await d.release().catch((err: unknown) => this.#o.log.warn({ err, messageId: d.id }, "hand-back failed"));
  }

  #checkStopping(): void {
    if (this.#stopping) throw new Stopping("worker stopping");
  }

  async #fetchAndDecode(job: DetectionJob): Promise<{ image: LetterboxedImage; decodeMs: number }> {
    const store = this.#o.objects(job.bucket);
    if (!store) throw new PermanentJobError("unknown_bucket", `this worker does not read bucket ${job.bucket}`);
    // One slot covers the fetch and the decode. Fetching every delivery on arrival ran a batch's worth of S3 requests
    // (the SDK's middleware and signing, on the event loop) back to back each time a batch was acked: the loop stalled
    // for 20-50 ms (bench (c)), and each fetched image waited in memory for its decode.
    await this.#decodeSlot();
    try {
      const object = await store.get(job.key);
      if (!object) throw new PermanentJobError("object_missing", "the uploaded image is missing from storage");
      if (object.info.size > this.#o.maxImageBytes) {
        object.body.destroy();
        throw new PermanentJobError("too_large", `image is larger than ${this.#o.maxImageBytes} bytes`);
      }
      const bytes = await readLimited(object.body, this.#o.maxImageBytes);
      const t0 = performance.now();
      const image = await this.#letterbox(bytes);
      return { image, decodeMs: performance.now() - t0 };
    } finally {
      // hand the slot straight to the next waiting image, or free it
      const next = this.#decodeWaiting.shift();
      if (next) next();
      else this.#decoding--;
    }
  }

  /** The image at the model's input size; an image that cannot be decoded fails its job for good. */
  async #letterbox(bytes: Buffer): Promise<LetterboxedImage> {
    const [h, w] = this.#o.runner.imgsz;
    try {
      return await letterboxImage(bytes, w, h);
    } catch (err) {
      if (err instanceof ImageDecodeError) {
        const unsupported = /unsupported image format/.test(err.message);
        throw new PermanentJobError(unsupported ? "unsupported_format" : "undecodable", err.message);
      }
      throw err;
    }
  }

  /** Waits for one of the `decodeConcurrency` decoding slots (released in #fetchAndDecode's finally). */
  async #decodeSlot(): Promise<void> {
    if (this.#decoding < this.#o.decodeConcurrency) {
      this.#decoding++;
      return;
    }
    await new Promise<void>((resolve) => this.#decodeWaiting.push(resolve));
  }

  async #runBatch(items: BatchItem[]): Promise<ItemResult[]> {
    const { metrics } = this.#o;
    const result = await this.#o.runner.run(items.map((i) => i.image));
    metrics.batchSize.observe(items.length);
    metrics.inference.observe(result.timings.inferenceMs / 1000);
    metrics.postprocess.observe(result.timings.postprocessMs / 1000);
    const prepareMs = result.timings.prepareMs / items.length;
    const outcomes = await this.#o.results.completeAll(
      items.map(({ job, image }, i) => ({
        job,
        size: { width: image.geometry.srcWidth, height: image.geometry.srcHeight },
        detections: result.detections[i] ?? [],
      })),
    );
    return outcomes.map((outcome) => ({ outcome, prepareMs }));
  }

  async #failPermanently(d: Delivery, job: DetectionJob, err: PermanentJobError): Promise<void> {
    const ctx = { jobId: job.jobId, imageId: job.imageId, reason: err.reason };
    try {
      await this.#o.results.fail(job, err.message);
    } catch (dbErr) {
      // the verdict is not recorded yet: try again later like any transient failure
      return this.#failTransiently(d, job, dbErr);
    }
    this.#o.log.warn({ ...ctx, error: err.message }, "image failed");
    this.#o.metrics.failed.inc({ reason: err.reason });
    await d.ack();
  }

  async #failTransiently(d: Delivery, job: DetectionJob, err: unknown): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const ctx = { jobId: job.jobId, imageId: job.imageId, deliveries: d.deliveries };
    if (d.deliveries >= this.#o.deliveryLimit) {
      const reason = `gave up after ${d.deliveries} attempts: ${message}`;
      await this.#o.results.fail(job, reason).catch(() => undefined);
      this.#o.log.error({ ...ctx, err }, "job failed on its last delivery: dead-lettered");
      this.#o.metrics.failed.inc({ reason: "delivery_limit" });
      await d.deadLetter(reason);
      return;
    }
    this.#o.log.warn({ ...ctx, err }, "job failed, will be retried");
    this.#o.metrics.failed.inc({ reason: "transient" });
    await this.#pause((this.#o.retryDelay ?? ((n) => jitteredDelay(n, 200, 5_000)))(d.deliveries));
    await d.retry();
  }

  /** Sleeps before a retry, cut short by stop(). */
  #pause(ms: number): Promise<void> {
    if (this.#stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakeRetry.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakeRetry.add(wake);
    });
  }
}
