/**
 * Writes a synthetic dataset (CONTRACTS.md §5) in the Ultralytics layout:
 *   DIR/images/<name>.png|jpg, DIR/labels/<name>.txt (YOLO `class cx cy w h`, normalised),
 *   DIR/boxes.jsonl (exact pixel boxes per image) and DIR/data.yaml.
 *
 * Usage: tsx apps/detector/model/dataset/generate.ts --seed N --count K --out DIR [--start I] [--format png|jpeg|mixed]
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { encodeSample, type FormatChoice, formatFor } from "./encode.js";
import { CLASS_NAMES, generateSample, yoloLabels } from "./synth.js";

export interface GenerateOptions {
  seed: number;
  count: number;
  out: string;
  start?: number;
  format?: FormatChoice;
  concurrency?: number;
}

export interface BoxesLine {
  name: string;
  file: string;
  width: number;
  height: number;
  boxes: { classId: number; box: [number, number, number, number] }[];
}

export async function generateDataset(opts: GenerateOptions): Promise<BoxesLine[]> {
  const start = opts.start ?? 0;
  const choice = opts.format ?? "png";
  await mkdir(join(opts.out, "images"), { recursive: true });
  await mkdir(join(opts.out, "labels"), { recursive: true });
  const lines: BoxesLine[] = new Array(opts.count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < opts.count) {
      const k = next++;
      const index = start + k;
      const sample = generateSample(opts.seed, index);
      const { format, quality } = formatFor(choice, opts.seed, index);
      const file = `images/${sample.name}.${format === "png" ? "png" : "jpg"}`;
      await writeFile(join(opts.out, file), await encodeSample(sample, format, quality));
      await writeFile(join(opts.out, "labels", `${sample.name}.txt`), yoloLabels(sample));
      lines[k] = {
        name: sample.name,
        file,
        width: sample.width,
        height: sample.height,
        boxes: sample.defects.map((d) => ({ classId: d.classId, box: d.box })),
      };
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 2 }, worker));
  await writeFile(join(opts.out, "boxes.jsonl"), lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
  const names = CLASS_NAMES.map((n, i) => `  ${i}: ${n}`).join("\n");
  await writeFile(join(opts.out, "data.yaml"), `path: .\ntrain: images\nval: images\nnames:\n${names}\n`);
  return lines;
}

function intArg(v: string | undefined, name: string, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      count: { type: "string" },
      out: { type: "string" },
      start: { type: "string" },
      format: { type: "string", default: "png" },
    },
  });
  const format = values.format;
  if (format !== "png" && format !== "jpeg" && format !== "mixed")
    throw new Error("--format must be png, jpeg or mixed");
  if (!values.out) throw new Error("--out DIR is required");
  const t0 = performance.now();
  const lines = await generateDataset({
    seed: intArg(values.seed, "seed"),
    count: intArg(values.count, "count"),
    start: intArg(values.start, "start", 0),
    out: values.out,
    format,
  });
  const defects = lines.reduce((s, l) => s + l.boxes.length, 0);
  console.log(
    `${lines.length} images, ${defects} defects → ${values.out} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
