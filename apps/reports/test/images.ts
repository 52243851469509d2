/** Radiograph-like test images (grey weld band, dark pores, a bright inclusion) made with sharp. */
import sharp from "sharp";

export interface Blob {
  cx: number;
  cy: number;
  r: number;
  level: number;
}

/** A grey PNG or JPEG of `width` × `height` with the given disks drawn into it. */
export async function radiograph(
  width: number,
  height: number,
  blobs: Blob[],
  format: "png" | "jpeg" = "png",
): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height);
  const bandTop = Math.round(height * 0.35);
  const bandBottom = Math.round(height * 0.65);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) pixels[y * width + x] = y >= bandTop && y < bandBottom ? 150 : 120;
  }
  for (const b of blobs) {
    for (let y = Math.max(0, b.cy - b.r); y <= Math.min(height - 1, b.cy + b.r); y++) {
      for (let x = Math.max(0, b.cx - b.r); x <= Math.min(width - 1, b.cx + b.r); x++) {
        if ((x - b.cx) ** 2 + (y - b.cy) ** 2 <= b.r ** 2) pixels[y * width + x] = b.level;
      }
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 1 } });
  return format === "png" ? image.png().toBuffer() : image.jpeg({ quality: 90 }).toBuffer();
}
