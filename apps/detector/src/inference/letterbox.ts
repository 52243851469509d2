/**
 * Letterboxing exactly as Ultralytics does it (CONTRACTS.md §4): scale to fit keeping the aspect, centre, pad with
 * 114, RGB, then 0..1 float32 CHW. Decoding is sharp's: PNG or JPEG, grey or colour, 8 or 16 bit, EXIF orientation
 * applied, alpha dropped.
 */
import sharp, { type Metadata, type OutputInfo } from "sharp";

export const PAD_VALUE = 114;

export interface LetterboxGeometry {
  /** The decoded image's size after EXIF orientation: the space boxes are mapped back to. */
  srcWidth: number;
  srcHeight: number;
  /** The network input size. */
  dstWidth: number;
  dstHeight: number;
  scale: number;
  /** The resized image's size inside the canvas. */
  newWidth: number;
  newHeight: number;
  padLeft: number;
  padTop: number;
}

/** Ultralytics' LetterBox arithmetic (`round(dw - 0.1)` for the left/top pad, so ties go the same way). */
export function letterboxGeometry(
  srcWidth: number,
  srcHeight: number,
  dstWidth: number,
  dstHeight: number,
): LetterboxGeometry {
  if (!(srcWidth > 0 && srcHeight > 0)) throw new RangeError(`invalid image size ${srcWidth}x${srcHeight}`);
  const scale = Math.min(dstWidth / srcWidth, dstHeight / srcHeight);
  const newWidth = Math.max(1, Math.min(dstWidth, Math.round(srcWidth * scale)));
  const newHeight = Math.max(1, Math.min(dstHeight, Math.round(srcHeight * scale)));
  const padLeft = Math.max(0, Math.round((dstWidth - newWidth) / 2 - 0.1));
  const padTop = Math.max(0, Math.round((dstHeight - newHeight) / 2 - 0.1));
  return { srcWidth, srcHeight, dstWidth, dstHeight, scale, newWidth, newHeight, padLeft, padTop };
}

export interface LetterboxedImage {
  /** RGB, interleaved (HWC), dstWidth × dstHeight × 3. */
  rgb: Uint8Array;
  geometry: LetterboxGeometry;
}

export class ImageDecodeError extends Error {
  override name = "ImageDecodeError";
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
    throw new ImageDecodeError(`cannot read image: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (meta.format !== "png" && meta.format !== "jpeg") {
    throw new ImageDecodeError(`unsupported image format ${meta.format ?? "unknown"}`);
  }
  if (!meta.width || !meta.height) throw new ImageDecodeError("image has no size");
  const swap = (meta.orientation ?? 1) >= 5;
  const srcWidth = swap ? meta.height : meta.width;
  const srcHeight = swap ? meta.width : meta.height;
  const g = letterboxGeometry(srcWidth, srcHeight, dstWidth, dstHeight);
  let pipeline = sharp(bytes, { failOn: "error" }).rotate();
  if (g.newWidth !== srcWidth || g.newHeight !== srcHeight) {
    pipeline = pipeline.resize(g.newWidth, g.newHeight, { fit: "fill", kernel: "linear" });
  }
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await pipeline
      .extend({
        top: g.padTop,
        bottom: dstHeight - g.newHeight - g.padTop,
        left: g.padLeft,
        right: dstWidth - g.newWidth - g.padLeft,
        background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE, alpha: 1 },
      })
      .flatten({ background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE } })
      .toColourspace("srgb")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageDecodeError(`cannot decode image: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { data, info } = raw;
  if (info.width !== dstWidth || info.height !== dstHeight) {
    throw new ImageDecodeError(`letterbox produced ${info.width}x${info.height}, expected ${dstWidth}x${dstHeight}`);
  }
  const n = dstWidth * dstHeight;
  if (info.channels === 3) return { rgb: new Uint8Array(data.buffer, data.byteOffset, n * 3), geometry: g };
  const rgb = new Uint8Array(n * 3);
  for (let k = 0; k < n; k++) {
    const base = k * info.channels;
    const grey = info.channels < 3;
    rgb[k * 3] = data[base] ?? 0;
    rgb[k * 3 + 1] = data[grey ? base : base + 1] ?? 0;
    rgb[k * 3 + 2] = data[grey ? base : base + 2] ?? 0;
  }
  return { rgb, geometry: g };
}

/**
 * Writes an interleaved RGB image as 0..1 planar CHW into `out` at `offset` (a batch slot), allocating when no
 * buffer is given.
 */
export function rgbToChw(
  rgb: Uint8Array,
  width: number,
  height: number,
  out: Float32Array = new Float32Array(3 * width * height),
  offset = 0,
): Float32Array {
  const plane = width * height;
  if (rgb.length < plane * 3) throw new RangeError("rgb buffer is smaller than width × height × 3");
  if (out.length < offset + plane * 3) throw new RangeError("output tensor is too small");
  const inv = 1 / 255;
  for (let k = 0; k < plane; k++) {
    out[offset + k] = (rgb[k * 3] ?? 0) * inv;
    out[offset + plane + k] = (rgb[k * 3 + 1] ?? 0) * inv;
    out[offset + 2 * plane + k] = (rgb[k * 3 + 2] ?? 0) * inv;
  }
  return out;
}

/** Maps a box [x1, y1, x2, y2] from network-input pixels back to the original image, clipped to its bounds. */
export function unletterboxBox(
  box: readonly [number, number, number, number],
  g: LetterboxGeometry,
): [number, number, number, number] {
  const clip = (v: number, max: number): number => (v < 0 ? 0 : v > max ? max : v);
  return [
    clip((box[0] - g.padLeft) / g.scale, g.srcWidth),
    clip((box[1] - g.padTop) / g.scale, g.srcHeight),
    clip((box[2] - g.padLeft) / g.scale, g.srcWidth),
    clip((box[3] - g.padTop) / g.scale, g.srcHeight),
  ];
}
