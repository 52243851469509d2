/**
 * The synthetic NDT radiograph of CONTRACTS.md §5, rendered deterministically from (seed, index).
 *
 * Geometry is continuous: pixel (x, y) covers [x, x+1) × [y, y+1) and is sampled at its centre. Each defect is drawn
 * as a coverage map in 0..1 (a soft edge of at most 1 px) added with its contrast; its ground-truth box is the tight
 * bound of the pixels whose coverage is above zero, in pixel-edge coordinates [x1, y1, x2, y2] (x2, y2 exclusive).
 */
import { Rng } from "./rng.js";

export const CLASS_NAMES = ["porosity", "crack", "inclusion"] as const;
export type DefectClass = (typeof CLASS_NAMES)[number];

/** The ranges of CONTRACTS.md §5, in one place so tests check the same numbers the generator draws from. */
export const SPEC = {
  size: [320, 1024],
  background: [90, 170],
  bandHeightFraction: [0.25, 0.45],
  bandDelta: [10, 35],
  gradient: 15,
  noiseSigma: [3, 10],
  porosityRadius: [3, 12],
  crackSegments: [1, 4],
  crackLength: [30, 220],
  crackWidth: [1, 3],
  inclusionMajor: [5, 20],
  inclusionMinor: [3, 12],
  darkContrast: [-80, -35],
  brightContrast: [35, 80],
  defects: [0, 6],
  minGap: 4,
} as const;

export type Box = [x1: number, y1: number, x2: number, y2: number];

export type DefectShape =
  | { kind: "porosity"; cx: number; cy: number; radius: number }
  | { kind: "crack"; points: [number, number][]; width: number; length: number }
  | { kind: "inclusion"; cx: number; cy: number; a: number; b: number; angle: number };

export interface Defect {
  cls: DefectClass;
  classId: number;
  contrast: number;
  shape: DefectShape;
  box: Box;
}

export interface SampleMeta {
  background: number;
  band: { top: number; height: number; delta: number; edge: number };
  gradient: { amplitude: number; angle: number };
  noiseSigma: number;
}

export interface Sample {
  name: string;
  width: number;
  height: number;
  /** 8-bit grey pixels, row-major, width × height. */
  pixels: Uint8Array;
  defects: Defect[];
  meta: SampleMeta;
  /** The noiseless float image before rounding, only with `keepField` (for tests). */
  field?: Float32Array;
}

export interface RenderOptions {
  /** @default true */
  noise?: boolean;
  /** Draw the defects (their geometry and the PRNG stream are the same either way). @default true */
  paintDefects?: boolean;
  /** @default false */
  keepField?: boolean;
}

/** Coverage of one defect on a local window: origin (x0, y0), size w × h, values 0..1. */
interface Coverage {
  x0: number;
  y0: number;
  w: number;
  h: number;
  values: Float32Array;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function rasterise(bounds: [number, number, number, number], coverageAt: (px: number, py: number) => number): Coverage {
  const x0 = Math.floor(bounds[0]) - 1;
  const y0 = Math.floor(bounds[1]) - 1;
  const w = Math.ceil(bounds[2]) + 2 - x0;
  const h = Math.ceil(bounds[3]) + 2 - y0;
  const values = new Float32Array(w * h);
  for (let j = 0; j < h; j++) {
    for (let i = 0; i < w; i++) values[j * w + i] = clamp01(coverageAt(x0 + i + 0.5, y0 + j + 0.5));
  }
  return { x0, y0, w, h, values };
}

/** The tight bound of the covered pixels, or undefined when nothing is covered. */
export function coverageBox(c: Coverage): Box | undefined {
  let x1 = Number.POSITIVE_INFINITY;
  let y1 = Number.POSITIVE_INFINITY;
  let x2 = Number.NEGATIVE_INFINITY;
  let y2 = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < c.h; j++) {
    for (let i = 0; i < c.w; i++) {
      if ((c.values[j * c.w + i] ?? 0) > 0) {
        x1 = Math.min(x1, c.x0 + i);
        y1 = Math.min(y1, c.y0 + j);
        x2 = Math.max(x2, c.x0 + i + 1);
        y2 = Math.max(y2, c.y0 + j + 1);
      }
    }
  }
  return Number.isFinite(x1) ? [x1, y1, x2, y2] : undefined;
}

function segmentDistance(px: number, py: number, a: [number, number], b: [number, number]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  const t = len2 > 0 ? Math.max(0, Math.min(1, ((px - a[0]) * dx + (py - a[1]) * dy) / len2)) : 0;
  return Math.hypot(px - (a[0] + t * dx), py - (a[1] + t * dy));
}

/** The coverage of a shape: disks and polylines by exact distance, ellipses by the first-order distance estimate. */
export function shapeCoverage(shape: DefectShape): Coverage {
  switch (shape.kind) {
    case "porosity": {
      const { cx, cy, radius } = shape;
      const m = radius + 1;
      return rasterise([cx - m, cy - m, cx + m, cy + m], (px, py) => radius + 0.5 - Math.hypot(px - cx, py - cy));
    }
    case "crack": {
      const { points, width } = shape;
      const m = width / 2 + 1;
      const xs = points.map((p) => p[0]);
      const ys = points.map((p) => p[1]);
      return rasterise(
        [Math.min(...xs) - m, Math.min(...ys) - m, Math.max(...xs) + m, Math.max(...ys) + m],
        (px, py) => {
          let d = Number.POSITIVE_INFINITY;
          for (let k = 0; k + 1 < points.length; k++)
            d = Math.min(d, segmentDistance(px, py, points[k]!, points[k + 1]!));
          return width / 2 + 0.5 - d;
        },
      );
    }
    case "inclusion": {
      const { cx, cy, a, b, angle } = shape;
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const m = Math.max(a, b) + 1;
      return rasterise([cx - m, cy - m, cx + m, cy + m], (px, py) => {
        const u = (px - cx) * cos + (py - cy) * sin;
        const v = -(px - cx) * sin + (py - cy) * cos;
        const q = Math.hypot(u / a, v / b);
        if (q === 0) return 1;
        const g = Math.hypot(u / (a * a), v / (b * b)) / q;
        return 0.5 - (q - 1) / g;
      });
    }
  }
}

function drawShape(rng: Rng, cls: DefectClass, width: number, height: number): DefectShape {
  const cx = rng.uniform(0, width);
  const cy = rng.uniform(0, height);
  switch (cls) {
    case "porosity":
      return { kind: "porosity", cx, cy, radius: rng.uniform(SPEC.porosityRadius[0], SPEC.porosityRadius[1]) };
    case "crack": {
      const segments = rng.int(SPEC.crackSegments[0], SPEC.crackSegments[1]);
      const length = rng.uniform(SPEC.crackLength[0], SPEC.crackLength[1]);
      const weights = Array.from({ length: segments }, () => rng.uniform(0.5, 1.5));
      const total = weights.reduce((s, w) => s + w, 0);
      let heading = rng.uniform(0, 2 * Math.PI);
      const points: [number, number][] = [[0, 0]];
      for (const w of weights) {
        const last = points[points.length - 1]!;
        const l = (length * w) / total;
        points.push([last[0] + l * Math.cos(heading), last[1] + l * Math.sin(heading)]);
        heading += rng.uniform(-0.9, 0.9);
      }
      // Centre the polyline's bounds on the drawn position.
      const xs = points.map((p) => p[0]);
      const ys = points.map((p) => p[1]);
      const ox = cx - (Math.min(...xs) + Math.max(...xs)) / 2;
      const oy = cy - (Math.min(...ys) + Math.max(...ys)) / 2;
      return {
        kind: "crack",
        points: points.map(([x, y]) => [x + ox, y + oy]),
        width: rng.uniform(SPEC.crackWidth[0], SPEC.crackWidth[1]),
        length,
      };
    }
    case "inclusion":
      return {
        kind: "inclusion",
        cx,
        cy,
        a: rng.uniform(SPEC.inclusionMajor[0], SPEC.inclusionMajor[1]),
        b: rng.uniform(SPEC.inclusionMinor[0], SPEC.inclusionMinor[1]),
        angle: rng.uniform(0, Math.PI),
      };
  }
}

/** Whether two boxes are at least `gap` pixels apart (the pixels between them, on either axis). */
export function boxesApart(a: Box, b: Box, gap: number): boolean {
  return b[0] - a[2] >= gap || a[0] - b[2] >= gap || b[1] - a[3] >= gap || a[1] - b[3] >= gap;
}

export function sampleName(seed: number, index: number): string {
  return `s${seed}-${String(index).padStart(5, "0")}`;
}

/** Renders image `index` of the dataset `seed`. Each image has its own PRNG stream, so any one can be made alone. */
export function generateSample(seed: number, index: number, opts: RenderOptions = {}): Sample {
  const rng = new Rng(seed, index);
  const width = rng.int(SPEC.size[0], SPEC.size[1]);
  const height = rng.int(SPEC.size[0], SPEC.size[1]);
  const background = rng.uniform(SPEC.background[0], SPEC.background[1]);
  const bandHeight = Math.round(height * rng.uniform(SPEC.bandHeightFraction[0], SPEC.bandHeightFraction[1]));
  const band = {
    top: rng.int(0, height - bandHeight),
    height: bandHeight,
    delta: rng.sign() * rng.uniform(SPEC.bandDelta[0], SPEC.bandDelta[1]),
    edge: rng.uniform(1, 8),
  };
  const gradient = { amplitude: rng.uniform(-SPEC.gradient, SPEC.gradient), angle: rng.uniform(0, 2 * Math.PI) };
  const noiseSigma = rng.uniform(SPEC.noiseSigma[0], SPEC.noiseSigma[1]);

  // Base level: background, weld band (edges softened over `edge` px, fully inside its rows) and a linear gradient
  // whose extreme values over the image are ±amplitude.
  const field = new Float32Array(width * height);
  const gx = Math.cos(gradient.angle);
  const gy = Math.sin(gradient.angle);
  const half = (Math.abs(gx) * width + Math.abs(gy) * height) / 2;
  const bandRow = new Float32Array(height);
  for (let y = 0; y < height; y++) {
    const inside = Math.min(y + 0.5 - band.top, band.top + band.height - (y + 0.5));
    bandRow[y] = band.delta * clamp01(inside / band.edge);
  }
  for (let y = 0; y < height; y++) {
    const row = background + (bandRow[y] ?? 0);
    const dy = (y + 0.5 - height / 2) * gy;
    for (let x = 0; x < width; x++) {
      field[y * width + x] = row + (gradient.amplitude * ((x + 0.5 - width / 2) * gx + dy)) / half;
    }
  }

  const count = rng.int(SPEC.defects[0], SPEC.defects[1]);
  const defects: Defect[] = [];
  for (let n = 0; n < count; n++) {
    const classId = rng.int(0, CLASS_NAMES.length - 1);
    const cls = CLASS_NAMES[classId]!;
    const contrast =
      cls === "inclusion"
        ? rng.uniform(SPEC.brightContrast[0], SPEC.brightContrast[1])
        : rng.uniform(SPEC.darkContrast[0], SPEC.darkContrast[1]);
    for (let attempt = 0; attempt < 50; attempt++) {
      const shape = drawShape(rng, cls, width, height);
      const cov = shapeCoverage(shape);
      const box = coverageBox(cov);
      if (!box || box[0] < 2 || box[1] < 2 || box[2] > width - 2 || box[3] > height - 2) continue;
      if (!defects.every((d) => boxesApart(d.box, box, SPEC.minGap))) continue;
      for (let j = 0; j < cov.h && opts.paintDefects !== false; j++) {
        for (let i = 0; i < cov.w; i++) {
          const c = cov.values[j * cov.w + i] ?? 0;
          if (c > 0) field[(cov.y0 + j) * width + cov.x0 + i]! += contrast * c;
        }
      }
      defects.push({ cls, classId, contrast, shape, box });
      break;
    }
  }

  const pixels = new Uint8Array(width * height);
  for (let k = 0; k < pixels.length; k++) {
    const n = rng.normal();
    const v = Math.round((field[k] ?? 0) + (opts.noise === false ? 0 : noiseSigma * n));
    pixels[k] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return {
    name: sampleName(seed, index),
    width,
    height,
    pixels,
    defects,
    meta: { background, band, gradient, noiseSigma },
    ...(opts.keepField ? { field } : {}),
  };
}

/** YOLO label lines: `class cx cy w h`, normalised to the image size. */
export function yoloLabels(sample: Sample): string {
  return sample.defects
    .map((d) => {
      const [x1, y1, x2, y2] = d.box;
      const f = (v: number): string => v.toFixed(6);
      return `${d.classId} ${f((x1 + x2) / 2 / sample.width)} ${f((y1 + y2) / 2 / sample.height)} ${f((x2 - x1) / sample.width)} ${f((y2 - y1) / sample.height)}`;
    })
    .map((l) => `${l}\n`)
    .join("");
}
