/**
 * Letterboxing exactly as Ultralytics does it (CONTRACTS.md §4): scale to fit keeping the aspect, centre, pad with
 * 114, RGB, then 0..1 float32 CHW. Decoding is sharp's: PNG or JPEG, grey or colour, 8 or 16 bit, EXIF orientation
 * applied, alpha dropped. A grey image stays one channel here (radiographs are grey): the CHW step repeats it.
 */
import sharp, { type Metadata, type OutputInfo } from "sharp";
import { type LetterboxedImage, letterboxGeometry, PAD_VALUE } from "./geometry.js";

export type { LetterboxedImage } from "./geometry.js";

export class ImageDecodeError extends Error {
  override name = "ImageDecodeError";
}

const MAX_REASON = 200;

/**
 * libvips' message as one line a user can read (it becomes the image's `error`): libvips repeats its lines (one set
 * per read attempt) and sharp says "Unknown error" when libvips gave no text at all.
 */
export function decodeReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim().replace(/:$/, "");
    // the first line also carries sharp's prefix ("Input buffer has corrupt header: <libvips line>")
    if (line && line !== "Unknown error" && !lines.some((l) => l.includes(line))) lines.push(line);
  }
  const reason = lines.join("; ") || "corrupt or truncated image data";
  return reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason;
}

/** Decodes PNG/JPEG bytes and letterboxes them to dstWidth × dstHeight. Throws ImageDecodeError on bad input. */
export async function letterboxImage(
  bytes: Uint8Array,
  dstWidth: number,
  dstHeight: number,
): Promise<LetterboxedImage> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { failOn: "error" }).metadata();
  } catch (err) {
    throw new ImageDecodeError(`cannot read image: ${decodeReason(err)}`);
  }
  if (meta.format !== "png" && meta.format !== "jpeg") {
    throw new ImageDecodeError(`unsupported image format ${meta.format ?? "unknown"}`);
  }
  if (!meta.width || !meta.height) throw new ImageDecodeError("image has no size");
  const swap = (meta.orientation ?? 1) >= 5;
  const srcWidth = swap ? meta.height : meta.width;
  const srcHeight = swap ? meta.width : meta.height;
  const g = letterboxGeometry(srcWidth, srcHeight, dstWidth, dstHeight);
  // grey, with or without alpha (8 or 16 bit); CMYK and the rest become sRGB
  const grey = meta.channels !== undefined && meta.channels <= 2;
  // 16-bit grey goes through sRGB and keeps one channel: libvips' grey16 → b-w rounds differently from grey16 → sRGB
  // (one level apart for 18,965 of the 65,536 values), and sRGB is what the same image stored as RGB gets
  const grey16 = grey && meta.depth === "ushort";
  let pipeline = sharp(bytes, { failOn: "error" }).rotate();
  if (g.newWidth !== srcWidth || g.newHeight !== srcHeight) {
    pipeline = pipeline.resize(g.newWidth, g.newHeight, { fit: "fill", kernel: "linear" });
  }
  let raw: { data: Buffer; info: OutputInfo };
  try {
    if (grey16) pipeline = pipeline.extractChannel(0);
    raw = await pipeline
      .extend({
        top: g.padTop,
        bottom: dstHeight - g.newHeight - g.padTop,
        left: g.padLeft,
        right: dstWidth - g.newWidth - g.padLeft,
        background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE, alpha: 1 },
      })
      .flatten({ background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE } })
      .toColourspace(grey && !grey16 ? "b-w" : "srgb")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageDecodeError(`cannot decode image: ${decodeReason(err)}`);
  }
  const { data, info } = raw;
  if (info.width !== dstWidth || info.height !== dstHeight) {
    throw new ImageDecodeError(`letterbox produced ${info.width}x${info.height}, expected ${dstWidth}x${dstHeight}`);
  }
  const channels = info.channels;
  if (channels !== 1 && channels !== 3) throw new ImageDecodeError(`letterbox produced ${channels} channels`);
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.length), channels, geometry: g };
}
