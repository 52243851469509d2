import sharp from "sharp";
import { Rng } from "./rng.js";
import type { Sample } from "./synth.js";

export type ImageFormat = "png" | "jpeg";
/** `mixed` picks PNG or JPEG (quality 80–95) per image, deterministically from the seed and index. */
export type FormatChoice = ImageFormat | "mixed";

export interface EncodedSample {
  format: ImageFormat;
  bytes: Buffer;
}

export function formatFor(choice: FormatChoice, seed: number, index: number): { format: ImageFormat; quality: number } {
  if (choice !== "mixed") return { format: choice, quality: 92 };
  const rng = new Rng(seed, index, 0x6a09e667);
  return rng.next() < 0.5 ? { format: "png", quality: 0 } : { format: "jpeg", quality: rng.int(80, 95) };
}

/** Encodes a sample as an 8-bit single-channel PNG or JPEG. */
export async function encodeSample(sample: Sample, format: ImageFormat, quality = 92): Promise<Buffer> {
  const img = sharp(Buffer.from(sample.pixels.buffer, sample.pixels.byteOffset, sample.pixels.byteLength), {
    raw: { width: sample.width, height: sample.height, channels: 1 },
  }).toColourspace("b-w");
  return format === "png"
    ? img.png({ compressionLevel: 6 }).toBuffer()
    : img.jpeg({ quality, chromaSubsampling: "4:4:4" }).toBuffer();
}
