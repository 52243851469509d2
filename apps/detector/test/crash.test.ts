/**
 * A worker process killed (SIGKILL) while batches are in flight: the broker redelivers what it held, another worker
 * finishes every image, and each image ends `done` once with exactly the detections one run gives — nothing lost,
 * nothing written twice. The killed worker is the real entry point (src/server.ts) in its own process.
 */
import { describe, expect, it } from "vitest";
import { buildWorker } from "../src/app.js";
import { loadDetectorConfig } from "../src/config.js";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../src/inference/bundled.js";
import { Detector } from "../src/inference/detector.js";
import {
  filesDatabase,
  imageRows,
  publishSyntheticJobs,
  spawnWorkerProcess,
  testQueueName,
  untilFirstDone,
  waitFor,
  workerProcessSuite,
} from "./helpers.js";

const COUNT = 16;

const db = await filesDatabase("detector_crash");
const queueName = await testQueueName("crash");

describe.skipIf(!db || !queueName)("worker killed mid-batch", () => {
  const suite = workerProcessSuite(db!, queueName!);

  it("redelivers the killed worker's jobs; every image ends done once, without duplicate detections", async () => {
    const env = suite.workerEnv({
      INFERENCE_THREADS: "1",
      ORT_INTRA_OP_THREADS: "2",
      BATCH_MAX: "4",
    });
    const { jobs, images } = await publishSyntheticJobs(db!.db, suite.store, suite.queue, queueName!, COUNT, 8086);
    const ids = jobs.map((j) => j.imageId);

    const killed = spawnWorkerProcess(env);
    suite.child = killed.child;
    // the first batch committed while the rest are held (prefetch 16, batches of 4): kill it mid-stream
    await untilFirstDone(db!.db, ids, killed);
    suite.child.kill("SIGKILL");
    await killed.exited;
    suite.child = undefined;
    const atKill = await imageRows(db!.db, ids);
    const doneAtKill = atKill.filter((r) => r.status === "done").length;
    expect(doneAtKill).toBeLessThan(COUNT);
    expect(atKill.some((r) => r.status === "processing")).toBe(true);

    const worker = await buildWorker({ config: loadDetectorConfig({ ...env, LOG_LEVEL: "silent" }) });
    await worker.start();
    try {
      await waitFor(async () => (await imageRows(db!.db, ids)).every((r) => r.status === "done"), 120_000);
      await waitFor(async () => (await suite.queue.depth(queueName!)) === 0 && worker.consumer?.inFlight === 0);
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
    expect(await suite.queue.depth(`${queueName!}.dlq`)).toBe(0);
  });
});
