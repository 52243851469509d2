/**
 * The worker process (src/server.ts) stopped while a batch runs, with a shutdown bound shorter than the batch: kit's
 * runService exits 1 when the bound is reached, and the process must end with that code, not 134 (an inference
 * thread torn down inside onnxruntime aborts the process). The worker runs in its own process to read its exit.
 */
import { describe, expect, it } from "vitest";
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

const COUNT = 32;

const db = await filesDatabase("detector_shutdown");
const queueName = await testQueueName("shutdown");

describe.skipIf(!db || !queueName)("worker stopped past its shutdown bound while a batch runs", () => {
  const suite = workerProcessSuite(db!, queueName!);

  it("exits 1 (the bound's code), not 134; every job not done is back on the queue", { timeout: 180_000 }, async () => {
    const { jobs } = await publishSyntheticJobs(db!.db, suite.store, suite.queue, queueName!, COUNT, 6502);
    const ids = jobs.map((j) => j.imageId);

    const worker = spawnWorkerProcess(
      suite.workerEnv({
        // batches of 8 on one intra-op thread: about a second each, against a 100 ms bound
        INFERENCE_THREADS: "1",
        ORT_INTRA_OP_THREADS: "1",
        BATCH_MAX: "8",
        SHUTDOWN_TIMEOUT_MS: "100",
      }),
    );
    suite.child = worker.child;

    // the first batch committed, the next one (already decoded meanwhile) a third of the way through its run
    await untilFirstDone(db!.db, ids, worker);
    await new Promise((r) => setTimeout(r, 300));
    const doneAtStop = (await imageRows(db!.db, ids)).filter((r) => r.status === "done").length;
    suite.child.kill("SIGTERM");
    const { code, signal } = await worker.exited;
    suite.child = undefined;
    expect({ code, signal }, worker.output()).toEqual({ code: 1, signal: null });
    expect(worker.output()).toContain("shutdown bound reached");
    // the stop did land mid-stream (otherwise this would prove nothing)
    expect(doneAtStop).toBeLessThan(COUNT);
    const done = (await imageRows(db!.db, ids)).filter((r) => r.status === "done").length;
    // a done image's ack may have been lost with the process: its job may be back too (and will be acked as finished)
    await waitFor(async () => (await suite.queue.depth(queueName!)) + done >= COUNT, 10_000);
  });
});
