/**
 * The rows of files' tables as `pg` returns them (snake case, bigint as string). Files owns these tables; reports
 * reads them, and imports these types (type-only) so a column change breaks its build rather than its reports.
 */
import type { DefectClass, Image } from "./schemas.js";

/** `inspections`, the columns both services read. */
export interface InspectionRow extends Record<string, unknown> {
  id: string;
  title: string;
  site: string | null;
  notes: string | null;
  status: "open" | "closed";
  created_at: Date;
}

/** `images`, the columns of IMAGE_COLUMNS. */
export interface ImageRow extends Record<string, unknown> {
  id: string;
  filename: string;
  status: Image["status"];
  width: number | null;
  height: number | null;
  error: string | null;
  content_type: string;
  size_bytes: string;
  object_key: string;
}

/** `detections`, one box in original pixels, without its image. */
export interface DetectionBoxRow extends Record<string, unknown> {
  class: DefectClass;
  score: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** `detections`, one box in original pixels. */
export interface DetectionRow extends DetectionBoxRow {
  image_id: string;
}
