/**
 * The inference thread pool: the model runs on worker threads with the bundled thresholds and gives the same
 * detections as the in-process runner; a thread that dies fails only its batch and is replaced.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSample } from "../model/dataset/encode.js";
import { generateSample } from "../model/dataset/synth.js";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../src/inference/bundled.js";
import { type LetterboxedImage, letterboxImage } from "../src/inference/letterbox.js";
import { InferencePool, InferenceThreadError, type ThreadEvent } from "../src/inference/pool.js";
import { ModelRunner } from "../src/inference/runner.js";
import { SESSION_WORKER_URL } from "../src/paths.js";
import { DYING_BATCH_SIZE, HANGING_BATCH_SIZE } from "./fixtures/dying-batch.js";

const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const CLOSE_MID_RUN = fileURLToPath(new URL("./fixtures/close-mid-run.ts", import.meta.url));
const EXIT_MID_RUN = fileURLToPath(new URL("./fixtures/exit-mid-run.ts", import.meta.url));
const HANGING_WORKER_URL = new URL("./fixtures/hanging-session.worker.ts", import.meta.url);

const THREAD_OPTIONS = {
  modelPath: BUNDLED_MODEL_PATH,
  intraOpThreads: 1,
  allowSpinning: false,
  niceIncrement: 3,
  executionProviders: ["cpu"],
  maxDetections: 300,
  ...BUNDLED_MODEL_OPTIONS,
};

async function letterboxed(seed: number, count: number): Promise<LetterboxedImage[]> {
  const out: LetterboxedImage[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = await encodeSample(generateSample(seed, i), i % 2 ? "jpeg" : "png");
    out.push(await letterboxImage(bytes, 640, 640));
  }
  return out;
}

describe("InferencePool", () => {
  let pool: InferencePool;
  let runner: ModelRunner;
  beforeAll(async () => {
    pool = await InferencePool.start({ ...THREAD_OPTIONS, threads: 2, workerUrl: SESSION_WORKER_URL });
    runner = await ModelRunner.load(BUNDLED_MODEL_PATH, { ...BUNDLED_MODEL_OPTIONS, intraOpThreads: 1 });
  });
  afterAll(async () => {
    await pool?.close();
    await runner?.release();
  });

  it("loads the model on each thread and says which provider runs it", () => {
    expect(pool.threads).toBe(2);
    expect(pool.names).toEqual(["porosity", "crack", "inclusion"]);
    expect(pool.imgsz).toEqual([640, 640]);
    expect(pool.provider).toBe("cpu");
  });

  it.runIf(process.platform === "linux")(
    "runs inference below the event loop's priority (the threads' niceness is raised by niceIncrement)",
    () => {
      // /proc/<pid>/task/<tid>/stat: field 19 is the niceness (after the parenthesised name)
      const nice = (tid: string) =>
        Number(readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
      const own = nice(String(process.pid));
      const raised = readdirSync("/proc/self/task").filter((tid) => nice(tid) === Math.min(19, own + 3));
      // the two inference threads at least (their ORT intra-op threads too, when there are any)
      expect(raised.length).toBeGreaterThanOrEqual(2);
    },
  );

  it("returns the in-process runner's detections for a batch, in original pixels, with timings", async () => {
    const images = await letterboxed(4242, 3);
    const expected = await runner.runLetterboxed(images);
    const got = await pool.run(images);
    expect(got.detections).toEqual(expected.detections);
    expect(got.detections.flat().length).toBeGreaterThan(0);
    expect(got.timings.inferenceMs).toBeGreaterThan(0);
    expect(got.timings.prepareMs).toBeGreaterThan(0);
  });

  it("reuses its shared pixel buffers without mixing batches up", async () => {
    // grey and colour images of different byte sizes through the same buffers, one batch after another
    const grey = await letterboxed(9090, 2);
    const colour = await Promise.all(
      [0, 1].map(async (i) =>
        letterboxImage(
          await sharp(await encodeSample(generateSample(9191, i), "png"))
            .toColourspace("srgb")
            .png()
            .toBuffer(),
          640,
          640,
        ),
      ),
    );
    expect(grey.map((g) => g.channels)).toEqual([1, 1]);
    expect(colour.map((c) => c.channels)).toEqual([3, 3]);
    const expected = [await runner.runLetterboxed(grey), await runner.runLetterboxed(colour)];
    for (let round = 0; round < 3; round++) {
      expect((await pool.run(grey)).detections).toEqual(expected[0]!.detections);
      expect((await pool.run(colour)).detections).toEqual(expected[1]!.detections);
    }
    expect(grey[0]!.pixels.length).toBe(640 * 640); // the caller's images are left as they were
  });

  it("runs concurrent batches on both threads", async () => {
    const images = await letterboxed(777, 4);
    const results = await Promise.all([pool.run(images.slice(0, 2)), pool.run(images.slice(2))]);
    expect(results.map((r) => r.detections.length)).toEqual([2, 2]);
  });
});

describe("InferencePool with a thread that dies", () => {
  let pool: InferencePool;
  let modelDir: string;
  let modelPath: string;
  const events: ThreadEvent[] = [];
  beforeAll(async () => {
    // a copy of the model the test can take away, as a lost volume or a full disk would
    modelDir = mkdtempSync(join(tmpdir(), "ndt-pool-"));
    modelPath = join(modelDir, "defects.onnx");
    copyFileSync(BUNDLED_MODEL_PATH, modelPath);
    const workerUrl = new URL("./fixtures/dying-session.worker.ts", import.meta.url);
    pool = await InferencePool.start({
      ...THREAD_OPTIONS,
      modelPath,
      threads: 2,
      workerUrl,
      onThreadEvent: (event) => events.push(event),
    });
  });
  afterAll(async () => {
    await pool?.close();
    rmSync(modelDir, { recursive: true, force: true });
  });

  it("fails only the batch of the thread that died and replaces the thread", async () => {
    const dying = pool.run(await letterboxed(99, DYING_BATCH_SIZE));
    const alongside = pool.run(await letterboxed(99, 1));
    await expect(dying).rejects.toThrow(new InferenceThreadError("inference thread exited (70) during a batch"));
    expect((await alongside).detections).toHaveLength(1);
    await waitUntil(() => pool.threads === 2);
    const again = await pool.run(await letterboxed(99, 1));
    expect(again.detections).toHaveLength(1);
    expect(events).toEqual([
      { type: "exited", code: 70, duringBatch: true },
      { type: "replaced", attempts: 1 },
    ]);
  });

  it("keeps trying, backing off, when the replacement cannot start, and says so each time", async () => {
    events.length = 0;
    renameSync(modelPath, `${modelPath}.away`);
    await expect(pool.run(await letterboxed(7, DYING_BATCH_SIZE))).rejects.toBeInstanceOf(InferenceThreadError);
    await waitUntil(() => events.filter((e) => e.type === "replace-failed").length >= 2);
    expect(pool.threads).toBe(1);
    // meanwhile the other thread carries the work
    expect((await pool.run(await letterboxed(7, 1))).detections).toHaveLength(1);
    renameSync(`${modelPath}.away`, modelPath);
    await waitUntil(() => pool.threads === 2);
    const failures = events.filter((e) => e.type === "replace-failed");
    expect(failures[0]).toMatchObject({ attempt: 1, error: expect.stringContaining("defects.onnx") });
    expect(failures[1]).toMatchObject({ attempt: 2 });
    for (const f of failures) expect(f.retryInMs).toBeLessThanOrEqual(1_000 * 2 ** (f.attempt - 1));
    expect(events.at(-1)).toEqual({ type: "replaced", attempts: failures.length + 1 });
  });
});

describe("InferencePool.close", () => {
  // the child's own bound (120 s) is the one that should fire; vitest's default 60 s would fail a slow but live run
  it(
    "lets a running batch finish and fails the waiting one, and the process lives (terminating a running session aborts it)",
    { timeout: 150_000 },
    () => {
      const child = spawnSync(process.execPath, ["--import", "tsx", CLOSE_MID_RUN], {
        cwd: REPO_ROOT,
        encoding: "utf8",
        timeout: 120_000,
      });
      const output = `${child.stdout}${child.stderr}`;
      expect(child.signal, output).toBeNull();
      expect(child.status, output).toBe(0);
      const outcomes = JSON.parse(child.stdout.trim().split("\n").pop()!) as unknown;
      // runningAtClose: the close did land mid-run (otherwise this would prove nothing)
      expect(outcomes).toEqual(
        Array.from({ length: 4 }, () => ({ runningAtClose: true, detections: 4, waitingRejected: true })),
      );
    },
  );

  it("resolves within stopTimeoutMs when a thread never answers: the thread is ended and its batch fails", async () => {
    const pool = await InferencePool.start({
      ...THREAD_OPTIONS,
      threads: 1,
      workerUrl: HANGING_WORKER_URL,
      stopTimeoutMs: 1_000,
    });
    const wedged = pool.run(await letterboxed(31, HANGING_BATCH_SIZE)).then(
      () => "answered",
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    const closed = await Promise.race([
      pool.close().then(() => "closed"),
      new Promise((r) => setTimeout(() => r("still closing after 5 s"), 5_000)),
    ]);
    const elapsed = performance.now() - started;
    expect(closed).toBe("closed");
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(2_000);
    expect(await wedged).toEqual(new InferenceThreadError("inference thread exited (1) during a batch"));
    await waitUntil(() => pool.threads === 0, 5_000);
  });
});

describe("a process exit while a thread runs a batch", () => {
  /** The fixture's process, exiting `afterMs` after handing its thread a batch. */
  const exitDuring = (afterMs: number, exitCode: number, variant = "") => {
    const args = ["--import", "tsx", EXIT_MID_RUN, String(afterMs), String(exitCode), variant];
    const child = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
    const output = `${child.stdout}${child.stderr}`;
    expect(child.signal, output).toBeNull();
    expect(child.status, output).toBe(exitCode);
    return JSON.parse(child.stdout.trim().split("\n").pop()!) as { runningAtExit: boolean; exitWaitMs: number };
  };

  it(
    "keeps the code it was asked for: the exit waits for the run (a thread torn down mid-run aborts, 134)",
    { timeout: 120_000 },
    () => {
      for (const [afterMs, exitCode] of [
        [100, 3],
        [500, 0],
      ] as const) {
        const exited = exitDuring(afterMs, exitCode);
        // the exit did land mid-run (otherwise this would prove nothing), and waited for the run, not for the bound
        expect(exited.runningAtExit).toBe(true);
        expect(exited.exitWaitMs).toBeGreaterThan(0);
        expect(exited.exitWaitMs).toBeLessThan(10_000);
      }
    },
  );

  it("waits no longer than stopTimeoutMs for a thread that never answers", { timeout: 60_000 }, () => {
    const exited = exitDuring(100, 5, "hanging");
    expect(exited.runningAtExit).toBe(true);
    expect(exited.exitWaitMs).toBeGreaterThanOrEqual(950);
    expect(exited.exitWaitMs).toBeLessThan(2_000);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
