/**
 * The detection worker process: kit's service kernel serves /healthz, /readyz and /metrics on PORT; the consumer
 * does the work. `buildWorker` wires everything without starting it; `start` loads the model on the inference threads
 * (fatal when it cannot: the pod restarts) and then connects to the queue, retrying with backoff until it can, so
 * the HTTP side answers from the first moment. `/readyz` is ready once the model is loaded and the database and the
 * queue answer. Closing the app (runService on SIGTERM) stops the consumer gracefully before closing its clients.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  createService,
  httpServiceOptions,
  jitteredDelay,
  type JobQueue,
  type ObjectStore,
  openJobQueue,
  openObjectStore,
  PgDatabase,
  type ServiceApp,
  type SqlDatabase,
} from "@ndt/kit";
import sharp from "sharp";
import type { DetectorConfig } from "./config.js";
import { DetectionConsumer } from "./consumer.js";
import { InferencePool } from "./inference/pool.js";
import { BUNDLED_MODEL_OPTIONS } from "./inference/bundled.js";
import { type DetectorMetrics, detectorMetrics } from "./metrics.js";
import { BUNDLED_MODEL_PATH, SESSION_WORKER_URL } from "./paths.js";
import { ResultStore } from "./results.js";

export interface BuildOptions {
  config: DetectorConfig;
  logStream?: NodeJS.WritableStream;
  /** Inject adapters (tests); otherwise made from the config and closed with the app. */
  db?: SqlDatabase;
  queue?: JobQueue;
}

export interface DetectorWorker {
  app: ServiceApp;
  metrics: DetectorMetrics;
  /** Loads the model, then connects and consumes; resolves once consuming (or when closed first). */
  start(): Promise<void>;
  readonly pool: InferencePool | undefined;
  readonly consumer: DetectionConsumer | undefined;
}

/** The model and post-processing the config selects: the bundled model with its card's thresholds by default. */
export function modelSettings(config: DetectorConfig) {
  const bundled = config.MODEL_PATH === undefined;
  return {
    modelPath: config.MODEL_PATH ?? BUNDLED_MODEL_PATH,
    confThreshold: config.CONF_THRESHOLD ?? (bundled ? BUNDLED_MODEL_OPTIONS.confThreshold : 0.25),
    iouThreshold: config.NMS_IOU ?? (bundled ? BUNDLED_MODEL_OPTIONS.iouThreshold : 0.45),
    agnostic: config.NMS_AGNOSTIC ?? (bundled ? BUNDLED_MODEL_OPTIONS.agnostic : false),
    maxDetections: config.MAX_DETECTIONS,
  };
}

export function providersOf(config: DetectorConfig): string[] {
  return [...new Set(config.ORT_PROVIDERS.split(",").map((p) => p.trim().toLowerCase()))].filter(Boolean);
}

export async function buildWorker(opts: BuildOptions): Promise<DetectorWorker> {
  const { config } = opts;
  const app = await createService({
    ...httpServiceOptions("detector", config, opts.logStream),
    // probes and metrics only: no browser calls it, and a log line per probe would drown the job logs
    corsOrigins: "",
    disableRequestLogging: true,
  });
  const metrics = detectorMetrics(app.metrics);
  // one libvips thread per image: decoding parallelism is DECODE_CONCURRENCY, the rest of the cores are inference's
  sharp.concurrency(1);
  const db = opts.db ?? new PgDatabase(config, app.log);
  const queue = opts.queue ?? openJobQueue(config, { db, log: app.log });
  const stores = new Map<string, ObjectStore>();
  const objects = (bucket: string): ObjectStore | undefined => {
    if (config.S3_BUCKET !== undefined && bucket !== config.S3_BUCKET) return undefined;
    let store = stores.get(bucket);
    if (!store) {
      store = openObjectStore(config, { bucket });
      stores.set(bucket, store);
    }
    return store;
  };

  let pool: InferencePool | undefined;
  let consumer: DetectionConsumer | undefined;
  let closing = false;
  let starting: Promise<void> | undefined;
  let wakeBackoff: (() => void) | undefined;

  app.health.addCheck("model", async () => {
    if (!pool) throw new Error("model not loaded yet");
    // a thread that died is replaced; none left (the replacement failed too) means no work can be done here
    if (pool.threads === 0) throw new Error("no inference thread is running");
  });
  app.health.addCheck("database", () => db.ping());
  app.health.addCheck("queue", () => queue.ping());

  const settings = modelSettings(config);

  async function loadModel(): Promise<InferencePool> {
    if (config.MODEL_SHA256) {
      const digest = createHash("sha256")
        .update(await readFile(settings.modelPath))
        .digest("hex");
      if (digest !== config.MODEL_SHA256.toLowerCase()) {
        throw new Error(`${settings.modelPath}: sha256 ${digest} does not match MODEL_SHA256`);
      }
    }
    const loaded = await InferencePool.start({
      ...settings,
      threads: config.INFERENCE_THREADS,
      stopTimeoutMs: config.INFERENCE_STOP_TIMEOUT_MS,
      intraOpThreads: config.ORT_INTRA_OP_THREADS,
      allowSpinning: config.ORT_ALLOW_SPINNING,
      niceIncrement: config.INFERENCE_NICE_INCREMENT,
      executionProviders: providersOf(config),
      workerUrl: SESSION_WORKER_URL,
      onThreadEvent: (event) => {
        if (event.type === "exited") app.log.error(event, "inference thread exited; replacing it");
        else if (event.type === "replace-failed") app.log.error(event, "replacement inference thread failed to start");
        else app.log.info(event, "inference thread replaced");
      },
    });
    for (const failure of loaded.providerFailures) {
      app.log.info(failure, `execution provider ${failure.provider} unavailable, trying the next`);
    }
    app.log.info(
      {
        provider: loaded.provider,
        model: settings.modelPath,
        classes: loaded.names,
        imgsz: loaded.imgsz,
        threads: config.INFERENCE_THREADS,
        intraOpThreads: config.ORT_INTRA_OP_THREADS,
        confThreshold: settings.confThreshold,
        iouThreshold: settings.iouThreshold,
        agnostic: settings.agnostic,
      },
      `inference on ${loaded.provider.toUpperCase()}`,
    );
    metrics.info.set(
      {
        provider: loaded.provider,
        model: settings.modelPath,
        threads: String(config.INFERENCE_THREADS),
        intra_op_threads: String(config.ORT_INTRA_OP_THREADS),
      },
      1,
    );
    return loaded;
  }

  async function run(): Promise<void> {
    const loaded = await loadModel();
    if (closing) {
      await loaded.close();
      return;
    }
    pool = loaded;
    const next = new DetectionConsumer({
      queue,
      queueName: config.DETECTIONS_QUEUE,
      deliveryLimit: config.DETECTIONS_DELIVERY_LIMIT,
      prefetch: config.PREFETCH,
      objects,
      results: new ResultStore(db),
      runner: loaded,
      maxBatch: config.BATCH_MAX,
      maxBatchWaitMs: config.BATCH_WAIT_MS,
      maxImageBytes: config.MAX_IMAGE_BYTES,
      decodeConcurrency: config.DECODE_CONCURRENCY,
      metrics,
      log: app.log,
    });
    for (let attempt = 0; !closing; attempt++) {
      try {
        await next.start();
        consumer = next;
        app.log.info({ queue: config.DETECTIONS_QUEUE, prefetch: config.PREFETCH }, "consuming");
        return;
      } catch (err) {
        const delay = jitteredDelay(attempt, 250, 10_000);
        app.log.warn({ err, attempt, delay }, "cannot consume yet, retrying");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          wakeBackoff = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  app.addHook("onClose", async () => {
    closing = true;
    wakeBackoff?.();
    await starting?.catch(() => undefined);
    // unfinished jobs go back to the queue; running batches commit and ack first
    await consumer?.stop();
    await pool?.close();
    await queue.close().catch((err: unknown) => app.log.warn({ err }, "closing the queue failed"));
    for (const store of stores.values()) await store.close().catch(() => undefined);
    if (!opts.db) await db.close();
  });

  return {
    app,
    metrics,
    start() {
      starting ??= run();
      return starting;
    },
    get pool() {
      return pool;
    },
    get consumer() {
      return consumer;
    },
  };
}
