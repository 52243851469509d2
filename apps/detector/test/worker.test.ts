/**
 * The detection worker end to end on real servers: RabbitMQ (kit's AmqpQueue), s3rver through the AWS SDK,
 * PostgreSQL with the files service's tables. Jobs are published as apps/files publishes them; images come from the
 * §5 generator. Proves: detections committed in original pixels then acked; a poison image ends `failed`, acked and
 * never redelivered; an invalid body is dead-lettered; a duplicate delivery writes nothing twice; a transient failure
 * is retried up to the delivery limit and then dead-lettered; graceful shutdown returns unfinished jobs to the queue.
 */
import { Readable } from "node:stream";
import {
  type Delivery,
  type JobQueue,
  loadConfig,
  type ObjectStore,
  openJobQueue,
  openObjectStore,
  QueueConfigSchema,
} from "@ndt/kit";
import type { TestS3 } from "@ndt/kit/testing";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSample } from "../model/dataset/encode.js";
import { generateSample } from "../model/dataset/synth.js";
import { buildWorker, type DetectorWorker } from "../src/app.js";
import { loadDetectorConfig } from "../src/config.js";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../src/inference/bundled.js";
import { Detector } from "../src/inference/detector.js";
import type { DetectionJob } from "../src/job.js";
import {
  AMQP_URL,
  deleteQueues,
  amqpQueue,
  BUCKET,
  type Db,
  filesDatabase,
  imageRows,
  queuedImages,
  startS3,
  testQueueName,
  waitFor,
} from "./helpers.js";

const DELIVERY_LIMIT = 3;
const db = await filesDatabase("detector_worker");
const queueName = await testQueueName("worker");
/** The same scenarios on both JobQueue adapters: RabbitMQ (the cloud) and kit's PostgreSQL queue (the local stack). */
const BACKENDS = [
  { backend: "amqp" as const, ready: Boolean(db && queueName) },
  { backend: "postgres" as const, ready: Boolean(db) },
];

function config(
  env: { db: Db; s3: TestS3; queue: string; backend: "amqp" | "postgres" },
  overrides: Record<string, string> = {},
) {
  return loadDetectorConfig({
    DATABASE_URL: env.db.test.url,
    QUEUE_BACKEND: env.backend,
    AMQP_URL,
    DETECTIONS_QUEUE: env.queue,
    DETECTIONS_DELIVERY_LIMIT: String(DELIVERY_LIMIT),
    ...env.s3.env,
    S3_BUCKET: BUCKET,
    ORT_PROVIDERS: "cpu",
    INFERENCE_THREADS: "1",
    ORT_INTRA_OP_THREADS: "2",
    BATCH_MAX: "4",
    BATCH_WAIT_MS: "20",
    PREFETCH: "8",
    LOG_LEVEL: "silent",
    ...overrides,
  });
}

/** PNG and JPEG, grey and colour, one with EXIF orientation 6 (stored rotated). */
async function testImages(seed: number, count: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const sample = generateSample(seed, i);
    if (i % 4 === 3) {
      // colour JPEG stored rotated 90° counter-clockwise with orientation 6: displayed upright, as the sample
      const upright = await encodeSample(sample, "png");
      const stored = await sharp(upright).rotate(-90).toColourspace("srgb").jpeg({ quality: 95 }).toBuffer();
      out.push(await sharp(stored).withMetadata({ orientation: 6 }).toBuffer());
    } else out.push(await encodeSample(sample, i % 2 ? "jpeg" : "png"));
  }
  return out;
}

async function upload(store: ObjectStore, job: DetectionJob, bytes: Buffer) {
  await store.put(job.key, Readable.from([bytes]), { contentType: job.contentType });
}

const publish = (queue: JobQueue, name: string, jobs: DetectionJob[]) =>
  queue.publish(
    name,
    jobs.map((j) => ({ id: j.jobId, body: Buffer.from(JSON.stringify(j)) })),
  );

async function detectionsOf(imageId: string) {
  const { rows } = await db!.db.query<{ job_id: string; class: string; score: number; box: number[] }>(
    "SELECT job_id, class, score, ARRAY[x1, y1, x2, y2] AS box FROM detections WHERE image_id = $1 ORDER BY score DESC, x1",
    [imageId],
  );
  return rows;
}

/** `queue` with every delivery shown to `seen` before the consumer gets it. */
function watchDeliveries(queue: JobQueue, seen: (d: Delivery) => void): JobQueue {
  return {
    declare: (name, opts) => queue.declare(name, opts),
    publish: (name, messages) => queue.publish(name, messages),
    consume: (name, opts, onDelivery) =>
      queue.consume(name, opts, (d) => {
        seen(d);
        onDelivery(d);
      }),
    depth: (name) => queue.depth(name),
    ping: () => queue.ping(),
    close: () => queue.close(),
  };
}

function metricValue(text: string, name: string, labels = ""): number {
  const escaped = labels.replace(/[{}"=,]/g, (c) => `\\${c}`);
  const m = new RegExp(
    `^${name}${escaped ? `\\{[^}]*${escaped.slice(2, -2)}[^}]*\\}` : "(?:\\{[^}]*\\})?"} ([\\d.e+-]+)$`,
    "m",
  ).exec(text);
  return m ? Number(m[1]) : 0;
}

describe.each(BACKENDS)("detection worker on the $backend queue (S3, PostgreSQL)", ({ backend, ready }) => {
  // Only outside CI: the helpers behind `ready` (filesDatabase, testQueueName → kit serverUnavailable) THROW under
  // CI=true when a server is missing, and print the reason before this skip otherwise.
  if (!ready) return it.skip(`${backend}: servers unreachable`);
  let s3: TestS3;
  let store: ObjectStore;
  let queue: JobQueue;
  let reference: Detector;
  const queues: string[] = [];

  beforeAll(async () => {
    s3 = await startS3();
    store = openObjectStore(loadDetectorConfig({ DATABASE_URL: db!.test.url, ...s3.env, S3_BUCKET: BUCKET }));
    queue =
      backend === "amqp"
        ? amqpQueue()
        : openJobQueue(loadConfig(QueueConfigSchema, { QUEUE_BACKEND: "postgres" }), { db: db!.db });
    reference = await Detector.load(BUNDLED_MODEL_PATH, BUNDLED_MODEL_OPTIONS);
  });
  afterAll(async () => {
    await reference?.release();
    await queue?.close();
    await store?.close();
    await s3?.stop();
    if (backend === "amqp") await deleteQueues(queues);
  });

  async function startWorker(
    name: string,
    overrides: Record<string, string> = {},
    workerQueue?: JobQueue,
  ): Promise<DetectorWorker> {
    const worker = await buildWorker({
      config: config({ db: db!, s3, queue: name, backend }, overrides),
      ...(workerQueue ? { queue: workerQueue } : {}),
    });
    await worker.start();
    return worker;
  }

  it("commits each image's detections in original pixels, then acks; a poison image ends failed and is not redelivered; an invalid body is dead-lettered", async () => {
    const name = `${queueName ?? "test.detector"}.${backend}.main`;
    queues.push(name);
    await queue.declare(name, { deliveryLimit: DELIVERY_LIMIT });
    const jobs = await queuedImages(db!.db, 7);
    const images = await testImages(5150, 6);
    for (const [i, bytes] of images.entries()) await upload(store, jobs[i]!, bytes);
    const poison = jobs[6]!;
    const truncated = images[0]!.subarray(0, 600); // a PNG cut short: the header reads, the pixels do not
    await upload(store, poison, truncated);
    await publish(queue, name, jobs);
    await queue.publish(name, [{ id: "not-a-job", body: Buffer.from('{"jobId": 42}') }]);
    // the same job twice (a relay re-publish after a lost confirm): written once
    await publish(queue, name, [jobs[0]!]);

    const worker = await startWorker(name);
    try {
      const ids = jobs.map((j) => j.imageId);
      await waitFor(async () =>
        (await imageRows(db!.db, ids)).every((r) => r.status === "done" || r.status === "failed"),
      );
      await waitFor(async () => (await queue.depth(name)) === 0 && worker.consumer?.inFlight === 0);

      const expected = await reference.detect(images);
      expect(expected.flat().length).toBeGreaterThan(5);
      for (const [i, job] of jobs.slice(0, 6).entries()) {
        const sample = generateSample(5150, i);
        const [row] = await imageRows(db!.db, [job.imageId]);
        expect(row).toMatchObject({ status: "done", width: sample.width, height: sample.height, error: null });
        const got = await detectionsOf(job.imageId);
        expect(got.length, `image ${i}`).toBe(expected[i]!.length);
        expect(got.every((d) => d.job_id === job.jobId)).toBe(true);
        const want = expected[i]!.map((d) => ({ class: d.class, box: d.box }));
        for (const w of want) {
          const match = got.find((g) => g.class === w.class && g.box.every((v, k) => Math.abs(v - w.box[k]!) < 0.05));
          expect(match, `image ${i}: ${w.class} at ${w.box.join(",")}`).toBeDefined();
        }
        for (const g of got) {
          expect(g.box[2]).toBeLessThanOrEqual(sample.width);
          expect(g.box[3]).toBeLessThanOrEqual(sample.height);
        }
      }
      const [failed] = await imageRows(db!.db, [poison.imageId]);
      expect(failed!.status).toBe("failed");
      expect(failed!.error).toMatch(/^cannot (read|decode) image: [^\n]+$/);
      expect(await detectionsOf(poison.imageId)).toEqual([]);

      expect(await queue.depth(`${name}.dlq`)).toBe(1); // the invalid body, and only it
      const metrics = await (await worker.app.inject({ method: "GET", url: "/metrics" })).body;
      expect(metricValue(metrics, "ndt_detector_images_processed_total")).toBe(6);
      expect(metricValue(metrics, "ndt_detector_jobs_failed_total", '{reason="undecodable"}')).toBe(1);
      expect(metricValue(metrics, "ndt_detector_jobs_failed_total", '{reason="invalid_job"}')).toBe(1);
      expect(metricValue(metrics, "ndt_detector_jobs_failed_total", '{reason="transient"}')).toBe(0);
      expect(metricValue(metrics, "ndt_detector_batch_size_count")).toBeGreaterThan(0);
      expect(metrics).toMatch(/^ndt_detector_info\{[^}]*provider="cpu"/m);
      expect(metrics).toMatch(/^ndt_detector_inference_duration_seconds_bucket/m);
      expect(metrics).toMatch(/^ndt_detector_queue_lag_seconds_count/m);
      const readyz = await worker.app.inject({ method: "GET", url: "/readyz" });
      expect(readyz.statusCode).toBe(200);
    } finally {
      await worker.app.close();
    }
    // nothing comes back after the worker is gone: the poison image was acked, not left for redelivery
    expect(await queue.depth(name)).toBe(0);
  });

  it("retries a transient failure (object store unreachable) up to the delivery limit, then dead-letters it and marks the image failed", async () => {
    const name = `${queueName ?? "test.detector"}.${backend}.transient`;
    queues.push(name);
    await queue.declare(name, { deliveryLimit: DELIVERY_LIMIT });
    const [job] = await queuedImages(db!.db, 1);
    await publish(queue, name, [job!]);
    // nothing listens on port 9: every fetch fails as when S3 is down
    const worker = await startWorker(name, { S3_ENDPOINT: "http://127.0.0.1:9" });
    try {
      await waitFor(async () => (await queue.depth(`${name}.dlq`)) === 1);
      const [row] = await imageRows(db!.db, [job!.imageId]);
      expect(row!.status).toBe("failed");
      expect(row!.error).toMatch(new RegExp(`^gave up after ${DELIVERY_LIMIT} attempts`));
      const metrics = (await worker.app.inject({ method: "GET", url: "/metrics" })).body;
      expect(metricValue(metrics, "ndt_detector_jobs_failed_total", '{reason="transient"}')).toBe(DELIVERY_LIMIT - 1);
      expect(metricValue(metrics, "ndt_detector_jobs_failed_total", '{reason="delivery_limit"}')).toBe(1);
      expect(await queue.depth(name)).toBe(0);
    } finally {
      await worker.app.close();
    }
  });

  it("on graceful shutdown returns jobs not yet run to the queue (image back to queued); another worker finishes them once", async () => {
    const name = `${queueName ?? "test.detector"}.${backend}.shutdown`;
    queues.push(name);
    await queue.declare(name, { deliveryLimit: DELIVERY_LIMIT });
    const jobs = await queuedImages(db!.db, 12);
    const images = await testImages(616, 12);
    for (const [i, bytes] of images.entries()) await upload(store, jobs[i]!, bytes);
    await publish(queue, name, jobs);
    const ids = jobs.map((j) => j.imageId);

    // prefetch below the backlog: each ack during the drain could bring in another job, which must not be started
    // (nor its image touched) once the stop has begun; the wrapper notes the jobs delivered after that
    let stopping = false;
    const lateJobs: string[] = [];
    const watched = watchDeliveries(
      backend === "amqp"
        ? amqpQueue()
        : openJobQueue(loadConfig(QueueConfigSchema, { QUEUE_BACKEND: "postgres" }), { db: db!.db }),
      (d) => {
        if (stopping) lateJobs.push(d.id);
      },
    );
    const first = await startWorker(name, { BATCH_MAX: "2", PREFETCH: "4" }, watched);
    await waitFor(async () => (await imageRows(db!.db, ids)).some((r) => r.status === "done"));
    const { rows: clock } = await db!.db.query<{ now: Date }>("SELECT clock_timestamp() AS now");
    stopping = true;
    await first.app.close();
    const { rows: touched } = await db!.db.query<{ id: string }>(
      "SELECT id FROM images WHERE id = ANY($1::uuid[]) AND updated_at > $2",
      [jobs.filter((j) => lateJobs.includes(j.jobId)).map((j) => j.imageId), clock[0]!.now],
    );
    expect(touched).toEqual([]);
    const afterStop = await imageRows(db!.db, ids);
    expect(afterStop.filter((r) => r.status === "processing")).toEqual([]);
    const left = afterStop.filter((r) => r.status === "queued").length;
    expect(left).toBeGreaterThan(0);
    // the broker applies returns asynchronously
    await waitFor(async () => (await queue.depth(name)) === left);

    const attempts: number[] = [];
    const second = await startWorker(
      name,
      {},
      watchDeliveries(
        backend === "amqp"
          ? amqpQueue()
          : openJobQueue(loadConfig(QueueConfigSchema, { QUEUE_BACKEND: "postgres" }), { db: db!.db }),
        (d) => attempts.push(d.deliveries),
      ),
    );
    try {
      await waitFor(async () => (await imageRows(db!.db, ids)).every((r) => r.status === "done"));
      // the stop handed its jobs back without spending their attempts
      expect(attempts).toEqual(Array.from({ length: left }, () => 1));
      for (const [i, job] of jobs.entries()) {
        const got = await detectionsOf(job.imageId);
        expect(
          got.every((d) => d.job_id === job.jobId),
          `image ${i}`,
        ).toBe(true);
      }
      const expected = await reference.detect(images);
      const counts = await Promise.all(jobs.map(async (j) => (await detectionsOf(j.imageId)).length));
      expect(counts).toEqual(expected.map((d) => d.length));
    } finally {
      await second.app.close();
    }
  });
});

afterAll(async () => db?.drop());
