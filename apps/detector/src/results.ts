/**
 * The detector's writes to the files service's tables (apps/files/migrations): `images.status` and `detections`.
 *
 * Idempotent by job id without a unique constraint: the commit locks the image row, and writes only while the image
 * is not finished yet, so a redelivered job (its first run committed, the ack was lost) writes nothing twice. Each
 * status change fires files' NOTIFY trigger (its server-sent events).
 */
import type { SqlDatabase } from "@ndt/kit";
import type { Detection } from "./inference/runner.js";
import type { DetectionJob } from "./job.js";

export type ImageStatus = "queued" | "processing" | "done" | "failed";

/** What `begin` found: the job can run, or there is nothing to do. */
export type Begin = { kind: "run" } | { kind: "finished"; status: "done" | "failed" } | { kind: "missing" };

/** What `complete` / `fail` did. */
export type Outcome = "written" | "already-finished" | "missing";

export class ResultStore {
  constructor(private readonly db: SqlDatabase) {}

  /** Marks the image `processing` unless it is already finished or gone. */
  async begin(job: DetectionJob): Promise<Begin> {
    const { rows } = await this.db.query<{ status: ImageStatus; changed: boolean }>(
      `WITH target AS (
         SELECT id, status FROM images WHERE id = $1 AND organization_id = $2
       ), changed AS (
         UPDATE images SET status = 'processing', updated_at = clock_timestamp()
         FROM target WHERE images.id = target.id AND target.status = 'queued'
         RETURNING images.id
       )
       SELECT target.status, EXISTS (SELECT 1 FROM changed) AS changed FROM target`,
      [job.imageId, job.organizationId],
    );
    const row = rows[0];
    if (!row) return { kind: "missing" };
    if (row.status === "done" || row.status === "failed") return { kind: "finished", status: row.status };
    return { kind: "run" };
  }

  /** Writes the detections and `done` with the image's size, in one transaction, once per image. */
  async complete(
    job: DetectionJob,
    size: { width: number; height: number },
    detections: readonly Detection[],
  ): Promise<Outcome> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ status: ImageStatus }>(
        "SELECT status FROM images WHERE id = $1 AND organization_id = $2 FOR UPDATE",
        [job.imageId, job.organizationId],
      );
      const status = rows[0]?.status;
      if (!status) return "missing";
      // detections are only ever written with `done`, in this transaction, and `done`/`failed` are final: an image
      // not finished yet has none (a crashed earlier attempt never committed), so the status is the whole guard
      if (status === "done" || status === "failed") return "already-finished";
      if (detections.length > 0) {
        await tx.query(
          `INSERT INTO detections (job_id, image_id, class, score, x1, y1, x2, y2)
           SELECT $1, $2, d.class, d.score, d.x1, d.y1, d.x2, d.y2
           FROM unnest($3::text[], $4::real[], $5::real[], $6::real[], $7::real[], $8::real[])
             AS d(class, score, x1, y1, x2, y2)`,
          [
            job.jobId,
            job.imageId,
            detections.map((d) => d.class),
            detections.map((d) => d.score),
            detections.map((d) => d.box[0]),
            detections.map((d) => d.box[1]),
            detections.map((d) => d.box[2]),
            detections.map((d) => d.box[3]),
          ],
        );
      }
      await tx.query(
        `UPDATE images SET status = 'done', width = $2, height = $3, error = NULL, updated_at = clock_timestamp()
         WHERE id = $1`,
        [job.imageId, size.width, size.height],
      );
      return "written";
    });
  }

  /** Marks the image `failed` with a reason a user can read, unless it is already finished. */
  async fail(job: DetectionJob, reason: string): Promise<Outcome> {
    const { rows } = await this.db.query<{ status: ImageStatus; changed: boolean }>(
      `WITH target AS (
         SELECT id, status FROM images WHERE id = $1 AND organization_id = $2
       ), changed AS (
         UPDATE images SET status = 'failed', error = $3, updated_at = clock_timestamp()
         FROM target WHERE images.id = target.id AND target.status IN ('queued', 'processing')
         RETURNING images.id
       )
       SELECT target.status, EXISTS (SELECT 1 FROM changed) AS changed FROM target`,
      [job.imageId, job.organizationId, reason.slice(0, 1000)],
    );
    const row = rows[0];
    if (!row) return "missing";
    return row.changed ? "written" : "already-finished";
  }

  /** Puts a `processing` image back to `queued` (its job returns to the queue at shutdown). */
  async requeue(job: DetectionJob): Promise<void> {
    await this.db.query(
      "UPDATE images SET status = 'queued', updated_at = clock_timestamp() WHERE id = $1 AND status = 'processing'",
      [job.imageId],
    );
  }
}
