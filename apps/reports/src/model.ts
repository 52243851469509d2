/**
 * What a report is made of, and its content hash. The hash names the cached PDF: the same data always renders the
 * same bytes, so a report is rendered once per state of its inspection and served from the reports bucket after.
 */
import { createHash } from "node:crypto";

export const DEFECT_CLASSES = ["porosity", "crack", "inclusion"] as const;
export type DefectClass = (typeof DEFECT_CLASSES)[number];
export type ImageStatus = "queued" | "processing" | "done" | "failed";

/**
 * Bumped whenever the layout or anything else in the rendered bytes changes, so reports cached under the old
 * format are not served for the new one.
 */
export const REPORT_FORMAT_VERSION = 3;

export interface ReportDetection {
  class: DefectClass;
  score: number;
  /** x1, y1, x2, y2 in the original image's pixels. */
  box: [number, number, number, number];
}

export interface ReportImage {
  id: string;
  filename: string;
  status: ImageStatus;
  width: number | null;
  height: number | null;
  error: string | null;
  contentType: string;
  size: number;
  /** Key of the original in the uploads bucket (made by files, never by a user). */
  objectKey: string;
  detections: ReportDetection[];
}

export interface ReportInspection {
  id: string;
  organizationId: string;
  title: string;
  site: string | null;
  notes: string | null;
  status: "open" | "closed";
  /** ISO 8601, UTC. */
  createdAt: string;
}

export interface ReportData {
  inspection: ReportInspection;
  /** In upload order. */
  images: ReportImage[];
}

export interface ReportSummary {
  images: number;
  done: number;
  failed: number;
  defects: Record<DefectClass, number>;
}

export function summarize(images: readonly ReportImage[]): ReportSummary {
  const defects: Record<DefectClass, number> = { porosity: 0, crack: 0, inclusion: 0 };
  for (const image of images) for (const d of image.detections) defects[d.class]++;
  return {
    images: images.length,
    done: images.filter((i) => i.status === "done").length,
    failed: images.filter((i) => i.status === "failed").length,
    defects,
  };
}

/** Images still waiting for the detector: while any exists, the report would be incomplete (409 `not_ready`). */
export function pendingImages(data: ReportData): number {
  return data.images.filter((i) => i.status === "queued" || i.status === "processing").length;
}

/** Detections in a canonical order (best first, then by class and box), so row ids never change the hash. */
function sortDetections(detections: ReportDetection[]): ReportDetection[] {
  return [...detections].sort(
    (a, b) =>
      b.score - a.score ||
      a.class.localeCompare(b.class) ||
      a.box[0] - b.box[0] ||
      a.box[1] - b.box[1] ||
      a.box[2] - b.box[2] ||
      a.box[3] - b.box[3],
  );
}

/** The data in its canonical order: each image's detections best first (both the hash and the PDF use it). */
export function normalizeReport(data: ReportData): ReportData {
  return { ...data, images: data.images.map((i) => ({ ...i, detections: sortDetections(i.detections) })) };
}

/** JSON with object keys sorted at every level: one text per value, whatever order the properties were set in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Settings that change the rendered bytes: part of the hash, so changing one re-renders instead of serving old. */
export interface RenderSettings {
  maxImagePixels: number;
  jpegQuality: number;
}

/**
 * sha256 (hex) of everything the PDF shows, the render settings and the format version. Image bytes are not read:
 * an image's object key is unique to it and its object is never rewritten, so the key (with its size) stands for
 * the bytes.
 */
export function reportHash(data: ReportData, settings: RenderSettings): string {
  return createHash("sha256")
    .update(
      canonicalJson({
        format: REPORT_FORMAT_VERSION,
        settings,
        inspection: data.inspection,
        images: normalizeReport(data).images,
      }),
    )
    .digest("hex");
}
