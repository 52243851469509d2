/**
 * The detector's writes to the files service's tables (apps/files/migrations): `images.status` and `detections`.
 *
 * Idempotent by job id without a unique constraint: the write locks the image row, and writes only while the image
 * is not finished yet, so a redelivered job (its first run committed, the ack was lost) writes nothing twice. Each
 * status change fires files' NOTIFY trigger (its server-sent events).
 *
 * The status only moves forward (queued → processing → done | failed), each write guarded in SQL by the status it
 * leaves, with one way back: `requeue`, processing → queued, for a job handed back at shutdown. That one is taken
 * only by the delivery whose `begin` moved the image to processing, and only while no other delivery has begun on
 * it since (a duplicate may be running elsewhere), so a released duplicate never makes a running image look queued.
 */
import type { SqlDatabase } from "@ndt/kit";
import type { Detection } from "./inference/runner.js";
import type { DetectionJob } from "./job.js";

export type ImageStatus = "queued" | "processing" | "done" | "failed";

/**
 * What `begin` found: the job can run, or there is nothing to do. `claim` is set when this delivery moved the image
 * to processing: what `requeue` needs to move it back.
 */
export type Begin =
  { kind: "run"; claim: Claim | undefined } | { kind: "finished"; status: "done" | "failed" } | { kind: "missing" };

/**
 * The row version (`xmin`) the claiming delivery's update wrote: any later update of the image, another delivery's
 * `begin` included, changes it and so voids the claim.
 */
export type Claim = { readonly version: string };

/** What `completeAll` (per image) / `fail` did. */
export type Outcome = "written" | "already-finished" | "missing";

/** One image's result to write. */
export interface Completion {
  job: DetectionJob;
  /** The decoded image's size (after EXIF orientation). */
  size: { width: number; height: number };
  detections: readonly Detection[];
}

export class ResultStore {
  constructor(private readonly db: SqlDatabase) {}

  /**
   * Marks the image `processing` unless it is already finished or gone. On an image already processing (another
   * delivery of it began: a duplicate, or a redelivery after a crash) it writes the row all the same, status
   * unchanged, which voids the other delivery's claim.
   */
  async begin(job: DetectionJob): Promise<Begin> {
    const { rows } = await this.db.query<{ status: ImageStatus; claim: string | null }>(
      `WITH target AS (
         -- locked, so two deliveries beginning at once see each other: the second reads processing, not queued
         SELECT id, status FROM images WHERE id = $1 AND organization_id = $2 FOR UPDATE
       ), changed AS (
         UPDATE images SET status = 'processing', updated_at = clock_timestamp()
         FROM target WHERE images.id = target.id AND target.status IN ('queued', 'processing')
         RETURNING images.xmin::text AS version
       )
       SELECT target.status, CASE WHEN target.status = 'queued' THEN (SELECT version FROM changed) END AS claim
       FROM target`,
      [job.imageId, job.organizationId],
    );
    const row = rows[0];
    if (!row) return { kind: "missing" };
    if (row.status === "done" || row.status === "failed") return { kind: "finished", status: row.status };
    return { kind: "run", claim: row.claim === null ? undefined : { version: row.claim } };
  }

  /**
   * Writes each image's detections and `done` with its size, once per image, for a whole batch in one statement, so
   * one commit (per image five round trips and a commit before).
   * Each image's row is locked (in id order, so two batches cannot deadlock) while it is not finished; a second
   * completion of the same image, concurrent or in the same batch, finds it finished and writes nothing.
   */
  async completeAll(items: readonly Completion[]): Promise<Outcome[]> {
    if (items.length === 0) return [];
    const detections = {
      item: [] as number[],
      class: [] as string[],
      score: [] as number[],
      box: [[], [], [], []] as number[][],
    };
    items.forEach((item, i) => {
      for (const d of item.detections) {
        detections.item.push(i + 1);
        detections.class.push(d.class);
        detections.score.push(d.score);
        d.box.forEach((v, k) => detections.box[k]!.push(v));
      }
    });
    const { rows } = await this.db.query<{ found: boolean; written: boolean }>(
      `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[]) WITH ORDINALITY
           AS i(image_id, organization_id, job_id, width, height, n)
       ), locked AS (
         SELECT id, organization_id FROM images
         WHERE (id, organization_id) IN (SELECT image_id, organization_id FROM input)
           AND status IN ('queued', 'processing')
         ORDER BY id
         FOR UPDATE
       ), writing AS (
         SELECT DISTINCT ON (input.image_id) input.* FROM input
         JOIN locked ON locked.id = input.image_id AND locked.organization_id = input.organization_id
         ORDER BY input.image_id, input.n
       ), inserted AS (
         INSERT INTO detections (job_id, image_id, class, score, x1, y1, x2, y2)
         SELECT writing.job_id, writing.image_id, d.class, d.score, d.x1, d.y1, d.x2, d.y2
         FROM unnest($6::int[], $7::text[], $8::real[], $9::real[], $10::real[], $11::real[], $12::real[])
           AS d(n, class, score, x1, y1, x2, y2)
         JOIN writing ON writing.n = d.n
       ), updated AS (
         UPDATE images SET status = 'done', width = writing.width, height = writing.height, error = NULL,
           updated_at = clock_timestamp()
         FROM writing WHERE images.id = writing.image_id
         RETURNING images.id
       )
       SELECT
         EXISTS (SELECT 1 FROM images WHERE id = input.image_id AND organization_id = input.organization_id) AS found,
         input.n IN (SELECT writing.n FROM writing JOIN updated ON updated.id = writing.image_id) AS written
       FROM input ORDER BY input.n`,
      [
        items.map((i) => i.job.imageId),
        items.map((i) => i.job.organizationId),
        items.map((i) => i.job.jobId),
        items.map((i) => i.size.width),
        items.map((i) => i.size.height),
        detections.item,
        detections.class,
        detections.score,
        ...detections.box,
      ],
    );
    // detections are only ever written with `done`, here, and `done`/`failed` are final: an image not finished yet
    // has none (a crashed earlier attempt never committed), so the status is the whole guard
    return rows.map((row) => (row.written ? "written" : row.found ? "already-finished" : "missing"));
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

  /**
   * Puts a `processing` image back to `queued` (its job returns to the queue at shutdown), when `claim` (from this
   * delivery's `begin`) still holds; otherwise the image stays as it is, and the job's next delivery runs it from
   * `processing`. Says whether it moved.
   */
  async requeue(job: DetectionJob, claim: Claim | undefined): Promise<boolean> {
    if (!claim) return false;
    const { rowCount } = await this.db.query(
      `UPDATE images SET status = 'queued', updated_at = clock_timestamp()
       WHERE id = $1 AND organization_id = $2 AND status = 'processing' AND xmin = $3::xid`,
      [job.imageId, job.organizationId, claim.version],
    );
    return rowCount === 1;
  }
}
