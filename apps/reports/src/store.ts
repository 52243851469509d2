/**
 * Reads of a report's data: the inspection, its images and their detections (tables owned by files). Every query
 * is scoped by the caller's organisation (P6): another organisation's inspection reads as absent.
 */
import type { SqlDatabase, SqlExecutor } from "@ndt/kit";
import type { DetectionRow, ImageRow, InspectionRow } from "@ndt/files/rows";
import type { ReportData, ReportDetection, ReportImage } from "./model.js";

interface OwnedInspectionRow extends InspectionRow {
  organization_id: string;
}

export class ReportsStore {
  /** `db` is the read replica when one is configured: this service never writes. */
  constructor(private readonly db: SqlDatabase) {}

  /**
   * One snapshot (a read-only REPEATABLE READ transaction, which a hot standby allows): the images, their statuses
   * and their detections agree with each other even while the detector commits results.
   */
  async reportData(org: string, inspectionId: string): Promise<ReportData | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      return this.read(tx, org, inspectionId);
    });
  }

  private async read(db: SqlExecutor, org: string, inspectionId: string): Promise<ReportData | undefined> {
    const { rows: inspections } = await db.query<OwnedInspectionRow>(
      `SELECT id, organization_id, title, site, notes, status, created_at
       FROM inspections WHERE id = $1 AND organization_id = $2`,
      [inspectionId, org],
    );
    const inspection = inspections[0];
    if (!inspection) return undefined;
    const { rows: images } = await db.query<ImageRow>(
      `SELECT id, filename, status, width, height, error, content_type, size_bytes, object_key
       FROM images WHERE inspection_id = $1 AND organization_id = $2 ORDER BY created_at, id`,
      [inspectionId, org],
    );
    const { rows: detections } =
      images.length === 0
        ? { rows: [] }
        : await db.query<DetectionRow>(
            `SELECT d.image_id, d.class, d.score, d.x1, d.y1, d.x2, d.y2
             FROM detections d JOIN images i ON i.id = d.image_id
             WHERE i.inspection_id = $1 AND i.organization_id = $2`,
            [inspectionId, org],
          );
    const byImage = new Map<string, ReportDetection[]>();
    for (const d of detections) {
      const list = byImage.get(d.image_id) ?? [];
      list.push({ class: d.class, score: d.score, box: [d.x1, d.y1, d.x2, d.y2] });
      byImage.set(d.image_id, list);
    }
    return {
      inspection: {
        id: inspection.id,
        organizationId: inspection.organization_id,
        title: inspection.title,
        site: inspection.site,
        notes: inspection.notes,
        status: inspection.status,
        createdAt: inspection.created_at.toISOString(),
      },
      images: images.map((r): ReportImage => ({
        id: r.id,
        filename: r.filename,
        status: r.status,
        width: r.width,
        height: r.height,
        error: r.error,
        contentType: r.content_type,
        size: Number(r.size_bytes),
        objectKey: r.object_key,
        // in row order: the hash and the render put detections in their canonical order (normalizeReport)
        detections: byImage.get(r.id) ?? [],
      })),
    };
  }
}
