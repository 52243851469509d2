/**
 * Letterboxes a generated dataset with the inference core (so training sees exactly the pixels inference will) and
 * packs it for train.py: DIR/packed-S.u8 holds N × S × S grey bytes (the images are grey: one channel of the RGB
 * letterbox) and DIR/packed-S.json the boxes in letterboxed pixels.
 *
 * Usage: tsx apps/detector/model/dataset/pack.ts --dir DIR [--imgsz 640]
 */
import { open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { letterboxImage } from "../../src/inference/letterbox.js";
import type { BoxesLine } from "./generate.js";

export interface PackedIndex {
  imgsz: number;
  count: number;
  /** Per image: [classId, x1, y1, x2, y2] in letterboxed pixels. */
  boxes: [number, number, number, number, number][][];
}

export async function packDataset(dir: string, imgsz: number): Promise<PackedIndex> {
  const lines = (await readFile(join(dir, "boxes.jsonl"), "utf8"))
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as BoxesLine);
  const fh = await open(join(dir, `packed-${imgsz}.u8`), "w");
  const index: PackedIndex = { imgsz, count: lines.length, boxes: [] };
  const plane = Buffer.alloc(imgsz * imgsz);
  try {
    for (const line of lines) {
      const {
        pixels,
        channels,
        geometry: g,
      } = await letterboxImage(await readFile(join(dir, line.file)), imgsz, imgsz);
      for (let k = 0; k < plane.length; k++) plane[k] = pixels[k * channels] ?? 0;
      await fh.write(plane);
      index.boxes.push(
        line.boxes.map(({ classId, box }) => [
          classId,
          box[0] * g.scale + g.padLeft,
          box[1] * g.scale + g.padTop,
          box[2] * g.scale + g.padLeft,
          box[3] * g.scale + g.padTop,
        ]),
      );
    }
  } finally {
    await fh.close();
  }
  await writeFile(join(dir, `packed-${imgsz}.json`), JSON.stringify(index));
  return index;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { dir: { type: "string" }, imgsz: { type: "string", default: "640" } } });
  if (!values.dir) throw new Error("--dir DIR is required");
  const t0 = performance.now();
  const index = await packDataset(values.dir, Number(values.imgsz));
  console.log(`packed ${index.count} images at ${index.imgsz} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
