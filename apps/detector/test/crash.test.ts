/**
 * A worker process killed (SIGKILL) while batches are in flight: the broker redelivers what it held, another worker
 * finishes every image, and each image ends `done` once with exactly the detections one run gives — nothing lost,
 * nothing written twice. The killed worker is the real entry point (src/server.ts) in its own process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { type JobQueue, type ObjectStore, openObjectStore } from "@ndt/kit";
import type { TestS3 } from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSample } from "../model/dataset/encode.js";
import { generateSample } from "../model/dataset/synth.js";
import { buildWorker } from "../src/app.js";
import { loadDetectorConfig } from "../src/config.js";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../src/inference/bundled.js";
import { Detector } from "../src/inference/detector.js";
import {
  AMQP_URL,
  deleteQueues,
  amqpQueue,
  BUCKET,
  filesDatabase,
  imageRows,
  queuedImages,
  startS3,
  testQueueName,
  waitFor,
} from "./helpers.js";

const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SERVER = fileURLToPath(new URL("../src/server.ts", import.meta.url));
const COUNT = 16;

const db = await filesDatabase("detector_crash");
const queueName = await testQueueName("crash");

describe.skipIf(!db || !queueName)("worker killed mid-batch", () => {
  let s3: TestS3;
  let store: ObjectStore;
  let queue: JobQueue;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    s3 = await startS3();
    store = openObjectStore(loadDetectorConfig({ DATABASE_URL: db!.test.url, ...s3.env, S3_BUCKET: BUCKET }));
    queue = amqpQueue();
  });
  afterAll(async () => {
    child?.kill("SIGKILL");
    await queue?.close();
    await store?.close();
    await s3?.stop();
    await deleteQueues([queueName!]);
    await db?.drop();
  });

  it("redelivers the killed worker's jobs; every image ends done once, without duplicate detections", async () => {
    const env = {
      DATABASE_URL: db!.test.url,
      AMQP_URL,
      DETECTIONS_QUEUE: queueName!,
      DETECTIONS_DELIVERY_LIMIT: "5",
      ...s3.env,
      S3_BUCKET: BUCKET,
      ORT_PROVIDERS: "cpu",
      INFERENCE_THREADS: "1",
      ORT_INTRA_OP_THREADS: "2",
      BATCH_MAX: "4",
      BATCH_WAIT_MS: "10",
      PREFETCH: "16",
    };
    await queue.declare(queueName!, { deliveryLimit: 5 });
    const jobs = await queuedImages(db!.db, COUNT);
    const images: Buffer[] = [];
    for (let i = 0; i < COUNT; i++) images.push(await encodeSample(generateSample(8086, i), i % 2 ? "jpeg" : "png"));
    for (const [i, job] of jobs.entries()) {
      await store.put(job.key, Readable.from([images[i]!]), { contentType: job.contentType });
    }
    await queue.publish(
      queueName!,
      jobs.map((j) => ({ id: j.jobId, body: Buffer.from(JSON.stringify(j)) })),
    );
    const ids = jobs.map((j) => j.imageId);

    let output = "";
    child = spawn(process.execPath, ["--import", "tsx", SERVER], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        HOST: "127.0.0.1",
        PORT: "0",
        LOG_LEVEL: "warn",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    const exited = new Promise<void>((resolve) => child!.once("exit", () => resolve()));

    // the first batch committed while the rest are held (prefetch 16, batches of 4): kill it mid-stream
    await waitFor(async () => (await imageRows(db!.db, ids)).some((r) => r.status === "done"), 120_000).catch(
      (err: unknown) => {
        throw new Error(`${String(err)}; worker output:\n${output}`);
      },
    );
    child.kill("SIGKILL");
    await exited;
    child = undefined;
    const atKill = await imageRows(db!.db, ids);
    const doneAtKill = atKill.filter((r) => r.status === "done").length;
    expect(doneAtKill).toBeLessThan(COUNT);
    expect(atKill.some((r) => r.status === "processing")).toBe(true);

    const worker = await buildWorker({ config: loadDetectorConfig({ ...env, LOG_LEVEL: "silent" }) });
    await worker.start();
    try {
      await waitFor(async () => (await imageRows(db!.db, ids)).every((r) => r.status === "done"), 120_000);
      await waitFor(async () => (await queue.depth(queueName!)) === 0 && worker.consumer?.inFlight === 0);
    } finally {
      await worker.app.close();
    }

    const reference = await Detector.load(BUNDLED_MODEL_PATH, BUNDLED_MODEL_OPTIONS);
    const expected = await reference.detect(images);
    await reference.release();
    const { rows } = await db!.db.query<{ image_id: string; job_id: string; n: string }>(
      "SELECT image_id, job_id, count(*) AS n FROM detections WHERE image_id = ANY($1::uuid[]) GROUP BY image_id, job_id",
      [ids],
    );
    for (const [i, job] of jobs.entries()) {
      const mine = rows.filter((r) => r.image_id === job.imageId);
      // one job's rows per image, exactly as many as one run finds
      expect(
        mine.every((r) => r.job_id === job.jobId),
        `image ${i}`,
      ).toBe(true);
      expect(
        mine.reduce((sum, r) => sum + Number(r.n), 0),
        `image ${i}`,
      ).toBe(expected[i]!.length);
    }
    expect(expected.flat().length).toBeGreaterThan(COUNT / 2);
    expect(await queue.depth(`${queueName!}.dlq`)).toBe(0);
  });
});
