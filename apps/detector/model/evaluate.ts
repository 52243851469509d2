/**
 * Evaluates an ONNX detector on freshly generated synthetic images (CONTRACTS.md §5) through the inference core, so
 * what ships is what is measured: per-class precision and recall at a confidence threshold, and AP@0.5 (all-point
 * interpolation) over every detection above 0.001.
 *
 * Usage: tsx apps/detector/model/evaluate.ts --model apps/detector/model/defects.onnx --seed 90210 --count 300
 *          [--conf 0.35] [--nms 0.5] [--agnostic] [--start 0] [--format png|jpeg|mixed] [--json]
 */
import { parseArgs } from "node:util";
import { type Detection, Detector } from "../src/inference/detector.js";
import { iou } from "../src/inference/decode.js";
import { encodeSample, type FormatChoice, formatFor } from "./dataset/encode.js";
import { CLASS_NAMES, generateSample } from "./dataset/synth.js";

export interface ClassMetrics {
  class: string;
  groundTruth: number;
  truePositives: number;
  falsePositives: number;
  precision: number;
  recall: number;
  ap50: number;
}

export interface EvaluationResult {
  model: string;
  seed: number;
  start: number;
  count: number;
  format: FormatChoice;
  conf: number;
  /** IoU for matching detections to ground truth. */
  iou: number;
  /** IoU above which NMS drops a same-class box. */
  nmsIou: number;
  agnostic: boolean;
  classes: ClassMetrics[];
  map50: number;
  /** Precision/recall per class at other thresholds, to choose the card's threshold. */
  sweep: { conf: number; precision: number[]; recall: number[] }[];
  msPerImage: number;
}

export interface EvaluateOptions {
  model: string;
  seed: number;
  count: number;
  start?: number;
  conf?: number;
  format?: FormatChoice;
  batch?: number;
  /** @default 0.5 */
  nmsIou?: number;
  /** Class-agnostic NMS. @default false */
  agnostic?: boolean;
}

interface Scored {
  score: number;
  tp: boolean;
}

/** Greedy matching, best score first, at IoU ≥ threshold: each ground truth matches at most one detection. */
export function matchDetections(
  dets: readonly Pick<Detection, "classId" | "score" | "box">[],
  truth: readonly { classId: number; box: [number, number, number, number] }[],
  iouThreshold = 0.5,
): { classId: number; score: number; tp: boolean }[] {
  const used = new Uint8Array(truth.length);
  return [...dets]
    .sort((a, b) => b.score - a.score)
    .map((d) => {
      let best = -1;
      let bestIou = iouThreshold;
      truth.forEach((t, j) => {
        if (used[j] || t.classId !== d.classId) return;
        const v = iou(d.box, t.box);
        if (v >= bestIou) {
          best = j;
          bestIou = v;
        }
      });
      if (best >= 0) used[best] = 1;
      return { classId: d.classId, score: d.score, tp: best >= 0 };
    });
}

/** All-point interpolated AP (VOC 2010+/COCO style without the 101-point sampling). */
export function averagePrecision(scored: readonly Scored[], groundTruth: number): number {
  if (groundTruth === 0) return scored.length === 0 ? 1 : 0;
  const sorted = [...scored].sort((a, b) => b.score - a.score);
  const precision: number[] = [];
  const recall: number[] = [];
  let tp = 0;
  sorted.forEach((s, i) => {
    if (s.tp) tp++;
    precision.push(tp / (i + 1));
    recall.push(tp / groundTruth);
  });
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i]!, precision[i + 1]!);
  let ap = 0;
  let prevRecall = 0;
  for (let i = 0; i < sorted.length; i++) {
    ap += (recall[i]! - prevRecall) * precision[i]!;
    prevRecall = recall[i]!;
  }
  return ap;
}

export async function evaluate(opts: EvaluateOptions): Promise<EvaluationResult> {
  const conf = opts.conf ?? 0.35;
  const start = opts.start ?? 0;
  const format = opts.format ?? "png";
  const batch = opts.batch ?? 4;
  const nmsIou = opts.nmsIou ?? 0.5;
  const detector = await Detector.load(opts.model, {
    confThreshold: 0.001,
    iouThreshold: nmsIou,
    agnostic: opts.agnostic ?? false,
    intraOpThreads: 2,
  });
  const nc = CLASS_NAMES.length;
  const scored: Scored[][] = Array.from({ length: nc }, () => []);
  const gt = new Array<number>(nc).fill(0);
  let inferMs = 0;
  try {
    for (let b = 0; b < opts.count; b += batch) {
      const indices = Array.from({ length: Math.min(batch, opts.count - b) }, (_, i) => start + b + i);
      const samples = indices.map((i) => generateSample(opts.seed, i));
      const bytes = await Promise.all(
        samples.map((s, k) => {
          const f = formatFor(format, opts.seed, indices[k]!);
          return encodeSample(s, f.format, f.quality);
        }),
      );
      const t0 = performance.now();
      const results = await detector.detect(bytes);
      inferMs += performance.now() - t0;
      samples.forEach((s, k) => {
        const truth = s.defects.map((d) => ({ classId: d.classId, box: d.box }));
        for (const t of truth) gt[t.classId]!++;
        for (const m of matchDetections(results[k] ?? [], truth)) scored[m.classId]?.push(m);
      });
    }
  } finally {
    await detector.release();
  }
  const at = (c: number, threshold: number): { tp: number; fp: number } => {
    let tp = 0;
    let fp = 0;
    for (const s of scored[c] ?? []) {
      if (s.score < threshold) continue;
      if (s.tp) tp++;
      else fp++;
    }
    return { tp, fp };
  };
  const classes = CLASS_NAMES.map((name, c): ClassMetrics => {
    const { tp, fp } = at(c, conf);
    const g = gt[c] ?? 0;
    return {
      class: name,
      groundTruth: g,
      truePositives: tp,
      falsePositives: fp,
      precision: tp + fp > 0 ? tp / (tp + fp) : 1,
      recall: g > 0 ? tp / g : 1,
      ap50: averagePrecision(scored[c] ?? [], g),
    };
  });
  const sweep = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6].map((t) => {
    const per = CLASS_NAMES.map((_, c) => ({ ...at(c, t), g: gt[c] ?? 0 }));
    return {
      conf: t,
      precision: per.map((p) => (p.tp + p.fp > 0 ? p.tp / (p.tp + p.fp) : 1)),
      recall: per.map((p) => (p.g > 0 ? p.tp / p.g : 1)),
    };
  });
  return {
    model: opts.model,
    seed: opts.seed,
    start,
    count: opts.count,
    format,
    conf,
    iou: 0.5,
    nmsIou,
    agnostic: opts.agnostic ?? false,
    classes,
    map50: classes.reduce((s, c) => s + c.ap50, 0) / classes.length,
    sweep,
    msPerImage: inferMs / Math.max(1, opts.count),
  };
}

export function formatReport(r: EvaluationResult): string {
  const f = (v: number): string => v.toFixed(3);
  const lines = [
    `model ${r.model}: ${r.count} images, seed ${r.seed} from ${r.start}, ${r.format}, conf ${r.conf}, match IoU ${r.iou}, NMS IoU ${r.nmsIou}${r.agnostic ? " (class-agnostic)" : ""}`,
    "class       GT    TP    FP  precision  recall  AP@0.5",
    ...r.classes.map(
      (c) =>
        `${c.class.padEnd(10)} ${String(c.groundTruth).padStart(3)} ${String(c.truePositives).padStart(5)} ${String(c.falsePositives).padStart(5)}  ${f(c.precision).padStart(9)}  ${f(c.recall).padStart(6)}  ${f(c.ap50).padStart(6)}`,
    ),
    `mAP@0.5 ${f(r.map50)}; ${r.msPerImage.toFixed(1)} ms/image (decode + letterbox + inference + NMS)`,
    "sweep (conf: P/R per class):",
    ...r.sweep.map(
      (s) => `  ${s.conf.toFixed(2)}: ${s.precision.map((p, i) => `${f(p)}/${f(s.recall[i] ?? 0)}`).join("  ")}`,
    ),
  ];
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: "string", default: "apps/detector/model/defects.onnx" },
      seed: { type: "string" },
      count: { type: "string", default: "300" },
      start: { type: "string", default: "0" },
      conf: { type: "string", default: "0.35" },
      format: { type: "string", default: "png" },
      nms: { type: "string", default: "0.5" },
      agnostic: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const format = values.format;
  if (format !== "png" && format !== "jpeg" && format !== "mixed")
    throw new Error("--format must be png, jpeg or mixed");
  if (values.seed === undefined) throw new Error("--seed N is required (use one never used in training)");
  const result = await evaluate({
    model: values.model,
    seed: Number(values.seed),
    count: Number(values.count),
    start: Number(values.start),
    conf: Number(values.conf),
    format,
    nmsIou: Number(values.nms),
    agnostic: values.agnostic,
  });
  console.log(values.json ? JSON.stringify(result, null, 2) : formatReport(result));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
