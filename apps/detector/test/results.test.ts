/**
 * The detector's writes on the files service's tables (real PostgreSQL, files' migrations): `processing` at the
 * start, detections + `done` + size once per image whatever the number of deliveries, `failed` with a reason, and
 * back to `queued` only for the one delivery that began it.
 */
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import type { Detection } from "../src/inference/runner.js";
import type { DetectionJob } from "../src/job.js";
import { type Begin, ResultStore } from "../src/results.js";
import { filesDatabase, imageRows, queuedImages } from "./helpers.js";

const env = await filesDatabase("detector_results");
afterAll(async () => env?.drop());

const dets: Detection[] = [
  { classId: 0, class: "porosity", score: 0.91, box: [10, 20, 30, 40] },
  { classId: 1, class: "crack", score: 0.55, box: [100, 50, 300, 58] },
];

describe.skipIf(!env)("ResultStore", () => {
  const db = env!.db;
  const store = new ResultStore(db);
  /** One image's completion, as a batch of one. */
  const complete = async (job: DetectionJob, size: { width: number; height: number }, detections: Detection[]) =>
    (await store.completeAll([{ job, size, detections }]))[0];

  it("marks a queued image processing, then done with its size and detections in original pixels", async () => {
    const [job] = await queuedImages(db, 1);
    expect(await store.begin(job!)).toMatchObject({ kind: "run" });
    expect((await imageRows(db, [job!.imageId]))[0]!.status).toBe("processing");
    expect(await complete(job!, { width: 800, height: 400 }, dets)).toBe("written");
    expect(await imageRows(db, [job!.imageId])).toEqual([
      { id: job!.imageId, status: "done", width: 800, height: 400, error: null },
    ]);
    const { rows } = await db.query(
      "SELECT job_id, class, score, x1, y1, x2, y2 FROM detections WHERE image_id = $1 ORDER BY score DESC",
      [job!.imageId],
    );
    expect(rows).toEqual([
      { job_id: job!.jobId, class: "porosity", score: 0.91, x1: 10, y1: 20, x2: 30, y2: 40 },
      { job_id: job!.jobId, class: "crack", score: 0.55, x1: 100, y1: 50, x2: 300, y2: 58 },
    ]);
  });

  it("writes detections once when the same job (or another job for the image) completes again", async () => {
    const [job] = await queuedImages(db, 1);
    await store.begin(job!);
    const results = await Promise.all([
      complete(job!, { width: 10, height: 10 }, dets),
      complete(job!, { width: 10, height: 10 }, dets),
      complete({ ...job!, jobId: randomUUID() }, { width: 10, height: 10 }, dets),
    ]);
    expect(results.sort()).toEqual(["already-finished", "already-finished", "written"]);
    const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM detections WHERE image_id = $1", [
      job!.imageId,
    ]);
    expect(Number(rows[0]!.n)).toBe(dets.length);
    expect(await store.begin(job!)).toEqual({ kind: "finished", status: "done" });
  });

  it("completes a batch in one statement: each image once, duplicates in the batch and missing images answered", async () => {
    const [a, b, c] = await queuedImages(db, 3);
    for (const job of [a, b, c]) await store.begin(job!);
    const size = { width: 5, height: 6 };
    const outcomes = await store.completeAll([
      { job: a!, size, detections: dets },
      { job: b!, size, detections: [] },
      { job: { ...a!, jobId: randomUUID() }, size, detections: dets }, // a second delivery of a, same batch
      { job: { ...c!, organizationId: randomUUID() }, size, detections: dets },
      { job: c!, size: { width: 7, height: 8 }, detections: dets.slice(1) },
    ]);
    expect(outcomes).toEqual(["written", "written", "already-finished", "missing", "written"]);
    expect(await imageRows(db, [a!.imageId, b!.imageId, c!.imageId])).toEqual(
      expect.arrayContaining([
        { id: a!.imageId, status: "done", width: 5, height: 6, error: null },
        { id: b!.imageId, status: "done", width: 5, height: 6, error: null },
        { id: c!.imageId, status: "done", width: 7, height: 8, error: null },
      ]),
    );
    const { rows } = await db.query<{ image_id: string; job_id: string; n: string }>(
      "SELECT image_id, job_id, count(*) AS n FROM detections WHERE image_id = ANY($1) GROUP BY image_id, job_id",
      [[a!.imageId, b!.imageId, c!.imageId]],
    );
    expect(rows.map((r) => [r.image_id, r.job_id, Number(r.n)]).sort()).toEqual(
      [
        [a!.imageId, a!.jobId, 2],
        [c!.imageId, c!.jobId, 1],
      ].sort(),
    );
  });

  it("lets overlapping batches run at once: no deadlock, every image written once", async () => {
    const jobs = await queuedImages(db, 12);
    const size = { width: 1, height: 1 };
    // each batch takes all twelve images, each in another order
    const batches = [jobs, [...jobs].reverse(), [...jobs.slice(6), ...jobs.slice(0, 6)]].map((order) =>
      order.map((job) => ({ job: { ...job, jobId: randomUUID() }, size, detections: dets })),
    );
    const outcomes = (await Promise.all(batches.map((batch) => store.completeAll(batch)))).flat();
    expect(outcomes.filter((o) => o === "written")).toHaveLength(12);
    expect(outcomes.filter((o) => o === "already-finished")).toHaveLength(24);
    const { rows } = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM detections WHERE image_id = ANY($1) GROUP BY image_id",
      [jobs.map((j) => j.imageId)],
    );
    expect(rows.map((r) => Number(r.n))).toEqual(Array(12).fill(dets.length));
  });

  it("marks an image failed with its reason, once, and never over a done image", async () => {
    const [bad, good] = await queuedImages(db, 2);
    expect(await store.fail(bad!, "cannot read image: corrupt")).toBe("written");
    expect(await store.fail(bad!, "another reason")).toBe("already-finished");
    expect((await imageRows(db, [bad!.imageId]))[0]).toMatchObject({
      status: "failed",
      error: "cannot read image: corrupt",
    });
    expect(await complete(bad!, { width: 1, height: 1 }, dets)).toBe("already-finished");
    await complete(good!, { width: 1, height: 1 }, []);
    expect(await store.fail(good!, "late")).toBe("already-finished");
    expect((await imageRows(db, [good!.imageId]))[0]).toMatchObject({ status: "done", error: null });
  });

  it("reports an image that does not exist (or belongs to another organisation) as missing", async () => {
    const [job] = await queuedImages(db, 1);
    expect(await store.begin({ ...job!, imageId: randomUUID() })).toEqual({ kind: "missing" });
    expect(await store.begin({ ...job!, organizationId: randomUUID() })).toEqual({ kind: "missing" });
    expect(await complete({ ...job!, organizationId: randomUUID() }, { width: 1, height: 1 }, dets)).toBe("missing");
  });

  it("puts a processing image back to queued (its job returns to the queue at shutdown)", async () => {
    const [job] = await queuedImages(db, 1);
    const begun = await store.begin(job!);
    expect(begun).toEqual({ kind: "run", claim: expect.objectContaining({ version: expect.any(String) }) });
    expect(await store.requeue(job!, begun.kind === "run" ? begun.claim : undefined)).toBe(true);
    expect((await imageRows(db, [job!.imageId]))[0]!.status).toBe("queued");
  });

  describe("never moves an image's status backwards when a duplicate delivery is released", () => {
    const claimOf = (begun: Begin) => (begun.kind === "run" ? begun.claim : undefined);
    const status = async (job: DetectionJob) => (await imageRows(db, [job.imageId]))[0]!.status;

    it("the duplicate begun while the first copy runs: releasing either leaves the image processing", async () => {
      const [job] = await queuedImages(db, 1);
      const first = await store.begin(job!);
      const duplicate = await store.begin(job!);
      const releasedDuplicate = await store.requeue(job!, claimOf(duplicate));
      expect(await status(job!)).toBe("processing");
      // the first copy's claim went with the duplicate's begin: that one may still be running elsewhere
      const releasedFirst = await store.requeue(job!, claimOf(first));
      expect(await status(job!)).toBe("processing");
      expect([duplicate, releasedDuplicate, releasedFirst]).toEqual([{ kind: "run", claim: undefined }, false, false]);
      // the job's next delivery runs it from processing
      expect(await store.begin(job!)).toEqual({ kind: "run", claim: undefined });
      expect(await complete(job!, { width: 2, height: 2 }, dets)).toBe("written");
    });

    it("two copies beginning at once: one claim at most, and neither release makes the image queued", async () => {
      for (let round = 0; round < 10; round++) {
        const [job] = await queuedImages(db, 1);
        const begun = await Promise.all([store.begin(job!), store.begin(job!)]);
        const released = [await store.requeue(job!, claimOf(begun[0]!)), await store.requeue(job!, claimOf(begun[1]!))];
        expect(await status(job!)).toBe("processing");
        expect(begun.filter((b) => claimOf(b) !== undefined).length).toBeLessThanOrEqual(1);
        expect(released).toEqual([false, false]);
      }
    });

    it("a copy released after its result was committed (by itself or another copy) leaves the image done", async () => {
      const [job] = await queuedImages(db, 1);
      const first = await store.begin(job!);
      expect(await complete(job!, { width: 3, height: 4 }, dets)).toBe("written");
      const releasedFirst = await store.requeue(job!, claimOf(first));
      const late = await store.begin(job!);
      const releasedLate = await store.requeue(job!, claimOf(late));
      expect(await imageRows(db, [job!.imageId])).toEqual([
        { id: job!.imageId, status: "done", width: 3, height: 4, error: null },
      ]);
      expect([late, releasedFirst, releasedLate]).toEqual([{ kind: "finished", status: "done" }, false, false]);
    });

    it("a failed image stays failed, and another organisation's job moves nothing", async () => {
      const [bad, other] = await queuedImages(db, 2);
      const begun = await store.begin(bad!);
      await store.fail(bad!, "cannot read image: corrupt");
      const releasedFailed = await store.requeue(bad!, claimOf(begun));
      expect(await status(bad!)).toBe("failed");
      const claim = claimOf(await store.begin(other!));
      const releasedElsewhere = await store.requeue({ ...other!, organizationId: randomUUID() }, claim);
      expect(await status(other!)).toBe("processing");
      expect([releasedFailed, releasedElsewhere]).toEqual([false, false]);
    });
  });
});
