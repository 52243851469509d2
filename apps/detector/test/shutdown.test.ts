/**
 * The worker process (src/server.ts) stopped while a batch runs, with a shutdown bound shorter than the batch: kit's
 * runService exits 1 when the bound is reached, and the process must end with that code, not 134 (an inference
 * thread torn down inside onnxruntime aborts the process). The worker runs in its own process to read its exit.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { type JobQueue, type ObjectStore, openObjectStore } from "@ndt/kit";
import type { TestS3 } from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSample } from "../model/dataset/encode.js";
import { generateSample } from "../model/dataset/synth.js";
import { loadDetectorConfig } from "../src/config.js";
import {
  AMQP_URL,
  amqpQueue,
  BUCKET,
  deleteQueues,
  filesDatabase,
  imageRows,
  queuedImages,
  startS3,
  testQueueName,
  waitFor,
} from "./helpers.js";

const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SERVER = fileURLToPath(new URL("../src/server.ts", import.meta.url));
const COUNT = 32;

const db = await filesDatabase("detector_shutdown");
const queueName = await testQueueName("shutdown");

describe.skipIf(!db || !queueName)("worker stopped past its shutdown bound while a batch runs", () => {
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

  it("exits 1 (the bound's code), not 134; every job not done is back on the queue", { timeout: 180_000 }, async () => {
    await queue.declare(queueName!, { deliveryLimit: 5 });
    const jobs = await queuedImages(db!.db, COUNT);
    for (const [i, job] of jobs.entries()) {
      const bytes = await encodeSample(generateSample(6502, i), i % 2 ? "jpeg" : "png");
      await store.put(job.key, Readable.from([bytes]), { contentType: job.contentType });
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
        DATABASE_URL: db!.test.url,
        AMQP_URL,
        DETECTIONS_QUEUE: queueName!,
        DETECTIONS_DELIVERY_LIMIT: "5",
        ...s3.env,
        S3_BUCKET: BUCKET,
        ORT_PROVIDERS: "cpu",
        // batches of 8 on one intra-op thread: about a second each, against a 100 ms bound
        INFERENCE_THREADS: "1",
        ORT_INTRA_OP_THREADS: "1",
        BATCH_MAX: "8",
        BATCH_WAIT_MS: "10",
        PREFETCH: "16",
        SHUTDOWN_TIMEOUT_MS: "100",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child!.once("exit", (code, signal) => resolve({ code, signal })),
    );

    // the first batch committed, the next one (already decoded meanwhile) a third of the way through its run
    await waitFor(async () => (await imageRows(db!.db, ids)).some((r) => r.status === "done"), 120_000).catch(
      (err: unknown) => {
        throw new Error(`${String(err)}; worker output:\n${output}`);
      },
    );
    await new Promise((r) => setTimeout(r, 300));
    const doneAtStop = (await imageRows(db!.db, ids)).filter((r) => r.status === "done").length;
    child.kill("SIGTERM");
    const { code, signal } = await exited;
    child = undefined;
    expect({ code, signal }, output).toEqual({ code: 1, signal: null });
    expect(output).toContain("shutdown bound reached");
    // the stop did land mid-stream (otherwise this would prove nothing)
    expect(doneAtStop).toBeLessThan(COUNT);
    const done = (await imageRows(db!.db, ids)).filter((r) => r.status === "done").length;
    // a done image's ack may have been lost with the process: its job may be back too (and will be acked as finished)
    await waitFor(async () => (await queue.depth(queueName!)) + done >= COUNT, 10_000);
  });
});
