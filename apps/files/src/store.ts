/** SQL of inspections and images. Every read and write is scoped by the caller's organisation (P6). */
import { randomUUID } from "node:crypto";
import { badRequest, type SqlDatabase, type SqlExecutor } from "@ndt/kit";
import type { DetectionJob } from "./relay.js";
import type { DetectionBoxRow, ImageRow, InspectionRow } from "./rows.js";
import type { Image, Inspection, InspectionDetail } from "./schemas.js";

/** An inspection row with its keyset-cursor position (to the microsecond, as text: a JS Date keeps milliseconds). */
interface ListedInspectionRow extends InspectionRow {
  cursor_at: string;
}

const INSPECTION_COLUMNS = `id, title, site, notes, status, created_at,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`;
const IMAGE_COLUMNS = "id, filename, status, width, height, error, content_type, size_bytes, object_key";

const toInspection = (r: InspectionRow): Inspection => ({
  id: r.id,
  title: r.title,
  site: r.site,
  notes: r.notes,
  status: r.status,
  createdAt: r.created_at.toISOString(),
});

/** The API's image from its row's fields (or a status change's state) and its detections. */
export function toImage(
  r: Pick<ImageRow, "id" | "filename" | "status" | "width" | "height" | "error">,
  detections: readonly DetectionBoxRow[],
): Image {
  return {
    id: r.id,
    filename: r.filename,
    status: r.status,
    ...(r.width !== null ? { width: r.width } : {}),
    ...(r.height !== null ? { height: r.height } : {}),
    ...(r.error !== null ? { error: r.error } : {}),
    detections: detections.map((d) => ({ class: d.class, score: d.score, box: [d.x1, d.y1, d.x2, d.y2] })),
  };
}

/** Opaque keyset cursor: the last row's (created_at to the microsecond, id). */
function encodeCursor(r: ListedInspectionRow): string {
  return Buffer.from(JSON.stringify([r.cursor_at, r.id])).toString("base64url");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

function decodeCursor(cursor: string): [string, string] {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(v) && v.length === 2 && TIMESTAMP.test(String(v[0])) && UUID.test(String(v[1]))) {
      return [String(v[0]), String(v[1])];
    }
  } catch {
    // fall through
  }
  throw badRequest("invalid_cursor", "The cursor is not valid");
}

export interface ImageRecord {
  image: Image;
  contentType: string;
  size: number;
  objectKey: string;
}

export class FilesStore {
  constructor(private readonly db: SqlDatabase) {}

  async createInspection(
    org: string,
    userId: string,
    body: { title: string; site?: string | null; notes?: string | null },
  ): Promise<Inspection> {
    const { rows } = await this.db.query<ListedInspectionRow>(
      `INSERT INTO inspections (organization_id, created_by, title, site, notes) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${INSPECTION_COLUMNS}`,
      // stored trimmed; a blank site is no site
      [org, userId, body.title.trim(), body.site?.trim() || null, body.notes ?? null],
    );
    return toInspection(rows[0]!);
  }

  async listInspections(org: string, limit: number, cursor?: string) {
    const after = cursor ? decodeCursor(cursor) : null;
    const { rows } = await this.db.query<ListedInspectionRow>(
      `SELECT ${INSPECTION_COLUMNS} FROM inspections
       WHERE organization_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
       ORDER BY created_at DESC, id DESC LIMIT $4`,
      [org, after?.[0] ?? null, after?.[1] ?? null, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page.map(toInspection), nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
  }

  async findInspection(org: string, id: string): Promise<Inspection | undefined> {
    const { rows } = await this.db.query<ListedInspectionRow>(
      `SELECT ${INSPECTION_COLUMNS} FROM inspections WHERE id = $1 AND organization_id = $2`,
      [id, org],
    );
    return rows[0] ? toInspection(rows[0]) : undefined;
  }

  async inspectionDetail(org: string, id: string): Promise<InspectionDetail | undefined> {
    const inspection = await this.findInspection(org, id);
    if (!inspection) return undefined;
    const images = await this.imagesOf(org, id);
    const defects = { porosity: 0, crack: 0, inclusion: 0 };
    for (const image of images) for (const d of image.detections) defects[d.class]++;
    return {
      ...inspection,
      images,
      summary: {
        images: images.length,
        done: images.filter((i) => i.status === "done").length,
        failed: images.filter((i) => i.status === "failed").length,
        defects,
      },
    };
  }

  /** The inspection's images as the API shows them, oldest first. */
  async imagesOf(org: string, inspectionId: string): Promise<Image[]> {
    return (await this.images(org, "inspection_id = $1", [inspectionId])).map((r) => r.image);
  }

  async findImage(org: string, inspectionId: string, imageId: string): Promise<ImageRecord | undefined> {
    const [record] = await this.images(org, "inspection_id = $1 AND id = $3", [inspectionId, imageId]);
    return record;
  }

  /**
   * One statement, so one snapshot: read in two, an image completed between them showed `processing` with its
   * detections (or `done` without them).
   */
  private async images(org: string, where: string, params: unknown[]): Promise<ImageRecord[]> {
    const { rows } = await this.db.query<ImageRow & { detections: DetectionBoxRow[] }>(
      `SELECT ${IMAGE_COLUMNS},
         COALESCE((SELECT json_agg(json_build_object('class', d.class, 'score', d.score,
                     'x1', d.x1, 'y1', d.y1, 'x2', d.x2, 'y2', d.y2) ORDER BY d.id)
                   FROM detections d WHERE d.image_id = images.id), '[]'::json) AS detections
       FROM images WHERE ${where} AND organization_id = $2 ORDER BY created_at, id`,
      [params[0], org, ...params.slice(1)],
    );
    return rows.map((r) => ({
      image: toImage(r, r.detections),
      contentType: r.content_type,
      size: Number(r.size_bytes),
      objectKey: r.object_key,
    }));
  }

  /** The image row (queued) and its detection job, in one transaction (P8: an accepted upload becomes a job). */
  async acceptImage(
    job: Omit<DetectionJob, "jobId">,
    meta: { filename: string; size: number },
  ): Promise<{ image: Image; jobId: string }> {
    const jobId = randomUUID();
    return this.db.transaction(async (tx: SqlExecutor) => {
      const { rows } = await tx.query<ImageRow>(
        `INSERT INTO images (id, inspection_id, organization_id, filename, content_type, size_bytes, object_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${IMAGE_COLUMNS}`,
        [job.imageId, job.inspectionId, job.organizationId, meta.filename, job.contentType, meta.size, job.key],
      );
      await tx.query("INSERT INTO outbox (job_id, payload) VALUES ($1, $2)", [
        jobId,
        JSON.stringify({ jobId, ...job }),
      ]);
      return { image: toImage(rows[0]!, []), jobId };
    });
  }
}
