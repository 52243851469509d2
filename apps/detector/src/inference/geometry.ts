/**
 * Letterbox arithmetic, CHW conversion and the mapping back to original pixels (CONTRACTS.md §4). Kept apart from
 * the sharp decoding so the inference worker threads load no image codec.
 */
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

/**
 * A letterboxed image at the network's input size, as decoding hands it to inference: interleaved 8-bit pixels,
 * grey (1 channel) or RGB (3). Grey images stay one channel until the CHW tensor: a third of the bytes to decode,
 * copy and hold while queued, and the same tensor.
 */
export interface LetterboxedImage {
  /** dstWidth × dstHeight × channels bytes, row by row, channels interleaved. */
  pixels: Uint8Array;
  channels: 1 | 3;
  geometry: LetterboxGeometry;
}

/**
 * Writes a letterboxed image as 0..1 planar RGB (CHW) into `out` at `offset` (a batch slot), allocating when no
 * buffer is given. A grey image fills the three planes alike.
 */
export function toChw(
  pixels: Uint8Array,
  channels: 1 | 3,
  width: number,
  height: number,
  out: Float32Array = new Float32Array(3 * width * height),
  offset = 0,
): Float32Array {
  const plane = width * height;
  if (pixels.length < plane * channels) throw new RangeError(`pixels are fewer than width × height × ${channels}`);
  if (out.length < offset + plane * 3) throw new RangeError("output tensor is too small");
  const inv = 1 / 255;
  if (channels === 1) {
    for (let k = 0; k < plane; k++) out[offset + k] = (pixels[k] ?? 0) * inv;
    out.copyWithin(offset + plane, offset, offset + plane);
    out.copyWithin(offset + 2 * plane, offset, offset + plane);
    return out;
  }
  for (let k = 0; k < plane; k++) {
    out[offset + k] = (pixels[k * 3] ?? 0) * inv;
    out[offset + plane + k] = (pixels[k * 3 + 1] ?? 0) * inv;
    out[offset + 2 * plane + k] = (pixels[k * 3 + 2] ?? 0) * inv;
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
